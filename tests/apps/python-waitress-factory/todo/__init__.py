from flask import Flask
from wordcount import words


def create_app(test_config=None):
    app = Flask(__name__, instance_relative_config=True)

    @app.route("/")
    def index():
        greeting = "Hello from python-waitress-factory"
        return f"{greeting} ({words(greeting)} words, counted in C)\n"

    return app
