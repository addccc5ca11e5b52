from importlib.metadata import version

from flask import Flask

server = Flask(__name__)


@server.get("/")
def index() -> dict:
    return {"service": "changelog-api", "version": version("changelog-api")}
