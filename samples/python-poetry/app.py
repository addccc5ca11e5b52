"""A small Falcon (WSGI) app. pallet installs its locked dependencies with
`poetry install --only main` and serves it with `gunicorn app:app` on $PORT."""

import json
import platform

import falcon


class Index:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_TEXT
        resp.text = f"Hello from python-poetry (Falcon {falcon.__version__}, Python {platform.python_version()})\n"


class Notes:
    """An in-memory list of notes: GET lists them, POST adds one."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"notes": self.notes}

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        note = json.loads(req.bounded_stream.read() or b"{}").get("text", "")
        if not note:
            raise falcon.HTTPBadRequest(title="missing 'text'")
        self.notes.append(note)
        resp.status = falcon.HTTP_201
        resp.media = {"added": note, "count": len(self.notes)}


app = falcon.App()
app.add_route("/", Index())
app.add_route("/notes", Notes())
