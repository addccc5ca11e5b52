import json
import os
import sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from importlib.metadata import version

import units


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"python": sys.version.split()[0], "itsdangerous": version("itsdangerous"),
                           "units": units.__file__, "day": units.DAY}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


HTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8080"))), Handler).serve_forever()
