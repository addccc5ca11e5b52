"""A small Flask app: a page, a JSON API and a health check. Built by pallet with the
pallet/python buildpack (pip, from requirements.txt) and served by gunicorn on $PORT."""

import platform

from flask import Flask, jsonify, render_template, request

app = Flask(__name__)
GREETING = "Hello from python-flask"


@app.get("/")
def index():
    return render_template("index.html", greeting=GREETING, python=platform.python_version())


@app.get("/api/greet")
def greet():
    name = request.args.get("name", "world")
    return jsonify(greeting=f"Hello, {name}!", runtime=f"Python {platform.python_version()}")


@app.get("/healthz")
def healthz():
    return "ok\n", 200, {"Content-Type": "text/plain; charset=utf-8"}


if __name__ == "__main__":  # local development only; the image runs gunicorn
    import os

    app.run(host="0.0.0.0", port=int(os.environ.get("PORT", "8080")))
