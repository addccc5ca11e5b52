from greet import hello
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route


async def index(request):
    return JSONResponse({"hello": hello(), "app": "python-uv-workspace"})


app = Starlette(routes=[Route("/", index)])
