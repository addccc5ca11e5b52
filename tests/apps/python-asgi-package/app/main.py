"""A Starlette service laid out as FastAPI's templates are: the app in app/main.py."""

from importlib.metadata import version

from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.words import greeting


async def home(request):
    return JSONResponse({"hello": greeting(), "idna": version("idna")})


app = Starlette(routes=[Route("/", home)])
