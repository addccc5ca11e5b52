"""QR codes as text, made by a program from a Debian package (qrencode, listed in the Aptfile).

GET /qr?text=...  -> the QR code, drawn with UTF-8 blocks
GET /version      -> which qrencode ran
"""

import json
import os
import shutil
import subprocess
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        url = urlparse(self.path)
        if url.path == "/qr":
            text = parse_qs(url.query).get("text", ["pallet"])[0]
            done = subprocess.run(["qrencode", "-t", "UTF8", "-o", "-", text], capture_output=True, check=True)
            self.reply(200, "text/plain; charset=utf-8", done.stdout)
        elif url.path == "/version":
            done = subprocess.run(["qrencode", "--version"], capture_output=True, text=True)
            first = (done.stdout + done.stderr).strip().splitlines()[0]
            body = json.dumps({"qrencode": first, "path": shutil.which("qrencode")})
            self.reply(200, "application/json", body.encode())
        else:
            self.reply(404, "text/plain", b"try /qr?text=hello\n")

    def reply(self, status: int, kind: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    HTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Handler).serve_forever()
