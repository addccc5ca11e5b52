import os

from flask import Flask

app = Flask(__name__)


@app.get("/")
def home():
    return "Hello from python-conda-env\n"


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=int(os.environ.get("PORT", "8080")))
