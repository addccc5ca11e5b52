"""The web process: submit jobs (POST /jobs) and see the queue (GET /). Standard library only."""

import json
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jobs


class Handler(BaseHTTPRequestHandler):
    def _send(self, code: int, body: dict) -> None:
        data = (json.dumps(body) + "\n").encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path == "/":
            self._send(200, {"service": "procfile-worker web", **jobs.stats()})
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self) -> None:
        if self.path != "/jobs":
            self._send(404, {"error": "not found"})
            return
        text = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        self._send(201, {"id": jobs.submit(text)})


if __name__ == "__main__":
    port = int(os.environ.get("PORT", "8080"))
    print(f"procfile-worker web listening on {port}", flush=True)
    ThreadingHTTPServer(("0.0.0.0", port), Handler).serve_forever()
