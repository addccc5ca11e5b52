"""A small FastAPI app. pallet installs its locked dependencies with `uv sync --frozen`
(no dev group) and starts `uvicorn main:app` on $PORT."""

import platform

from fastapi import FastAPI
from pydantic import BaseModel

app = FastAPI(title="python-fastapi-uv")


class Item(BaseModel):
    name: str
    quantity: int = 1


@app.get("/")
def index() -> dict:
    return {"message": "Hello from python-fastapi-uv", "python": platform.python_version()}


@app.post("/items")
def create_item(item: Item) -> dict:
    return {"created": item.name, "quantity": item.quantity}


@app.get("/healthz")
def healthz() -> dict:
    return {"status": "ok"}
