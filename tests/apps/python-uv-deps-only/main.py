"""GET /?host=bücher.example -> its IDNA (punycode) form, with the idna package, and which of
the dependency groups' packages (iniconfig: dev, six: lint) the environment has."""

import importlib.util
import json
import os
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs, urlparse

import idna


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        host = parse_qs(urlparse(self.path).query).get("host", ["bücher.example"])[0]
        body = json.dumps({"host": host, "ascii": idna.encode(host).decode(), "idna": idna.__version__,
                           "groups": [m for m in ("iniconfig", "six") if importlib.util.find_spec(m)]}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


HTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Handler).serve_forever()
