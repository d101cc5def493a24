"""Request-size limit for every route, and error bodies in the shape each API's clients read.

A body larger than `max_body_bytes` is refused with 413 before it is read into memory: by its Content-Length when
the client sends one, else while it streams in. Written as plain ASGI (no Starlette middleware) for the same reason
as `serving.metrics.RequestMetrics`: it runs on every request.
"""

from __future__ import annotations

import json


def error_body(path: str, status: int, message: str) -> dict:
    """OpenAI's `{"error": {...}}` on `/v1/` paths (what the `openai` client parses), FastAPI's `{"detail"}` else."""
    if path.startswith("/v1/"):
        kind = "invalid_request_error" if status < 500 else "server_error"
        return {"error": {"message": message, "type": kind, "param": None, "code": status}}
    return {"detail": message}


class _TooLarge(Exception):
    pass


class BodySizeLimit:
    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._refuse(scope, send, int(declared))
        received, started = 0, False

        async def counting_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def noting_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, noting_send)
        except _TooLarge:
            if started:
                raise
            await self._refuse(scope, send, received)

    async def _refuse(self, scope, send, size: int) -> None:
        message = f"request body of {size} bytes is larger than this service's limit of {self.max_bytes} bytes"
        body = json.dumps(error_body(scope["path"], 413, message)).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
