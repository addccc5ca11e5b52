import importlib.metadata

from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def home(request):
    return PlainTextResponse(f"Hello from python-uv-package {importlib.metadata.version('inventory-api')}\n")

app = Starlette(routes=[Route("/", home)])
