"""The entry point `quotes-server`: GET / -> all quotes, GET /<n> -> one."""

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer

from quotes import QUOTES


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        key = self.path.strip("/")
        if key.isdigit() and int(key) < len(QUOTES):
            status, data = 200, {"quote": QUOTES[int(key)]}
        elif not key:
            status, data = 200, {"service": "quotes", "quotes": QUOTES,
                                 "python": ".".join(map(str, sys.version_info[:3]))}
        else:
            status, data = 404, {"error": f"no quote {key!r}"}
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main() -> None:
    port = int(os.environ.get("PORT", "8080"))
    print(f"quotes-server listening on {port}", flush=True)
    HTTPServer(("0.0.0.0", port), Handler).serve_forever()
