"""A bare FastAPI app that echoes the request body as raw bytes: the floor for one HTTP round trip."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response

__all__ = ["app"]

app = FastAPI()


@app.post("/echo")
async def echo(request: Request) -> Response:
    return Response(await request.body(), media_type="application/octet-stream")


@app.get("/ping")
async def ping() -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")
