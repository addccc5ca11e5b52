import importlib.metadata

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from wordcount import words


async def home(request):
    greeting = f"Hello from python-uv-package {importlib.metadata.version('inventory-api')}"
    return PlainTextResponse(f"{greeting} ({words(greeting)} words, counted in C)\n")

app = Starlette(routes=[Route("/", home)])
