"""A chat-bot-style script with no manifest at all: one file, the standard library only.

It answers messages over HTTP (GET /?say=...) on $PORT, the way a bot's webhook would.
pallet detects it by the top-level *.py file and starts it with ``python bot.py``.
"""

import json
import os
import platform
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

REPLIES = {"hello": "Hello! I am python-bot.", "ping": "pong"}


def reply(message: str) -> str:
    return REPLIES.get(message.strip().lower(), f"You said {message!r}. Try 'hello' or 'ping'.")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        query = parse_qs(urlparse(self.path).query)
        body = json.dumps({"bot": "python-bot", "reply": reply(query.get("say", ["hello"])[0]),
                           "python": platform.python_version(), "machine": platform.machine()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args) -> None:  # one line a request, on stdout
        print(fmt % args, flush=True)


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8080"))
    print(f"python-bot listening on {port}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
