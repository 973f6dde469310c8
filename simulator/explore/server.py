"""The explorer's web server: one JSON endpoint per operation of `api`, the page, and plotly.js.

Starlette on uvicorn (the `explore` extra): a small, well-kept ASGI pair with no template engine, ORM or
session machinery to carry. Handlers are plain functions that Starlette runs in its thread pool, so one slow
request (a sweep) does not hold up the sliders of another user. Bad input is answered with status 400 and the
one line the CLI would print; anything else escaping is a bug and is answered with 500.
"""
from __future__ import annotations

import json
import logging
import math
from contextlib import asynccontextmanager
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from ..errors import SpecError
from . import api

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
MAX_BODY_BYTES = api.MAX_UPLOAD_BYTES + 64 * 1024  # an upload's text plus its JSON wrapping and the state
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8765


def _plotly_js() -> bytes:
    """plotly.js as shipped inside the `plotly` package (no CDN: the page works offline)."""
    from plotly.offline import get_plotlyjs
    return get_plotlyjs().encode("utf-8")


class _TooLarge(Exception):
    pass


async def _body(request: Request) -> dict:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _TooLarge()
    chunks, size = [], 0
    async for chunk in request.stream():  # counted as it arrives: a missing or false length cannot bypass it
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise _TooLarge()
        chunks.append(chunk)
    try:
        data = json.loads(b"".join(chunks) or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise SpecError("the request is not JSON") from None
    if not isinstance(data, dict):
        raise SpecError("expected a JSON object")
    return data


def _finite(value):
    """NaN and infinities as null: JSON has no literal for them and the browser's parser refuses Python's."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _json(out) -> Response:
    try:
        return JSONResponse(out)
    except ValueError:  # a non-finite number somewhere (e.g. a share of zero time): the slow path
        return JSONResponse(_finite(out))


def create_app(uploads: api.Uploads | None = None) -> Starlette:
    uploads = uploads if uploads is not None else api.Uploads()
    plotly = {}

    def endpoint(work, text: str | None = None):
        """POST handler: JSON in, `work(body)` in a worker thread, JSON (or text of media type `text`) out."""
        async def handle(request: Request) -> Response:
            try:
                body = await _body(request)
                out = await run_in_threadpool(work, body)
                return Response(out, media_type=text) if text is not None else _json(out)
            except _TooLarge:
                return JSONResponse({"error": f"error: request larger than {MAX_BODY_BYTES // 1024} KiB"}, 413)
            except SpecError as exc:
                return JSONResponse({"error": api.error_line(exc, uploads)}, 400)
            except Exception as exc:  # a bug, not the user's input: said so in the page, traceback in the log
                log.exception("explorer request %s failed", request.url.path)
                return JSONResponse({"error": f"internal error ({type(exc).__name__}: {exc}); this is a bug in the "
                                              "simulator, not in your input"}, 500)
        return handle

    def state(body):
        return body.get("state") or {}

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def plotly_js(request: Request) -> Response:
        if "js" not in plotly:
            plotly["js"] = await run_in_threadpool(_plotly_js)
        return Response(plotly["js"], media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ("app.js", "app.css"):
            return PlainTextResponse("not found", 404)
        return FileResponse(STATIC / name)

    async def catalog(request: Request) -> Response:
        return JSONResponse(await run_in_threadpool(api.catalog))

    routes = [
        Route("/", index),
        Route("/static/plotly.min.js", plotly_js),
        Route("/static/{name}", static),
        Route("/api/catalog", catalog),
        Route("/api/params", endpoint(lambda b: {"params": api.params(b.get("model"), uploads)}), methods=["POST"]),
        Route("/api/run", endpoint(lambda b: api.run_view(state(b), uploads, b.get("views"))), methods=["POST"]),
        Route("/api/export", endpoint(lambda b: api.export(state(b), b.get("format", "json"), b.get("by", "layer"),
                                                           uploads), text="text/plain"), methods=["POST"]),
        Route("/api/compare", endpoint(lambda b: api.compare(state(b), b.get("devices"), b.get("models"), uploads)),
              methods=["POST"]),
        Route("/api/sweep", endpoint(lambda b: api.sweep(state(b), b.get("vary"), uploads)), methods=["POST"]),
        Route("/api/upload", endpoint(lambda b: api.add_upload(uploads, b)), methods=["POST"]),
    ]
    @asynccontextmanager
    async def lifespan(app):
        yield
        uploads.close()  # uploaded files do not outlive the server

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.uploads = uploads
    return app


def listen(host: str, port: int):
    """A listening socket on host:port; one that cannot be had is a one-line error, not a traceback."""
    import socket
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family = infos[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(infos[0][4])
    except OSError as exc:
        raise SpecError(f"--host {host} --port {port}: cannot listen there: {exc.strerror or exc}") from None
    return sock


def serve(host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> int:
    """Serve until Ctrl-C; prints the page's address first."""
    import uvicorn
    sock = listen(host, port)
    app = create_app()
    shown_host = f"[{host}]" if ":" in host else host
    print(f"http://{shown_host}:{port}/  (the explorer; Ctrl-C stops it)", flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    return 0


class Background:
    """The server in a thread of this process, on `host` and a free port unless one is given: for tests,
    benchmarks and notebooks. `stop()` ends it (and removes its uploads)."""

    def __init__(self, host: str = DEFAULT_HOST, port: int = 0):
        import threading

        import uvicorn
        self.socket = listen(host, port)
        self.url = f"http://{host}:{self.socket.getsockname()[1]}/"
        self.app = create_app()
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)
        self.thread.start()
        import time
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the explorer server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()
