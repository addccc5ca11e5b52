import psycopg2
from flask import Flask

app = Flask(__name__)


@app.route("/")
def hello():
    return f"Hello from python-sdist-needs-headers (psycopg2 {psycopg2.__version__.split()[0]}, libpq {psycopg2.extensions.libpq_version()})\n"
