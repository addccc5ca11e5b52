"""An app factory, as Flask's tutorial writes it."""

from flask import Flask


def create_app(test_config=None):
    app = Flask(__name__)
    app.config.from_mapping(GREETING="Hello from python-flask-factory")

    @app.get("/")
    def home():
        return {"greeting": app.config["GREETING"], "factory": True}

    return app
