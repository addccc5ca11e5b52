"""A WSGI app whose .python-version asks for 3.14 (as `uv init` writes it today): no stable
Debian has that Python, so the build moves to the forky stack."""

import platform


def app(environ, start_response):
    body = f"Hello from python-314 (Python {platform.python_version()})\n".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
