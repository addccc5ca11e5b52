"""A Python app (standard library only) serving a stylesheet its package.json's build script
makes: the assets of a Python app, as a Django or Flask project's tailwind step makes them."""
import http.server
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        if self.path == "/static/site.css":
            body, kind = (HERE / "static" / "site.css").read_bytes(), "text/css"
        else:
            css = (HERE / "static" / "site.css").read_text()
            body, kind = f"<h1>Hello from python-assets</h1><style>{css}</style>\n".encode(), "text/html"
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.end_headers()
        self.wfile.write(body)


if __name__ == "__main__":
    http.server.ThreadingHTTPServer(("", int(os.environ.get("PORT", "8080"))), Handler).serve_forever()
