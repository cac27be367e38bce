"""The page's HTTP side: a Starlette app over the hub and the peer's commands.

| route | what |
|---|---|
| ``GET /`` | the page (``?token=`` sets the cookie and redirects to a clean URL) |
| ``GET /static/…`` | its JS and CSS |
| ``GET /api/events`` | Server-Sent Events: the words, a snapshot, then live messages |
| ``GET /api/snapshot`` | the current snapshot as JSON |
| ``GET /api/games/{id}/deletion?op=`` | what ``op`` would delete (``local-changes``, in words) |
| ``GET /api/unpack-logs``, ``/api/unpack-logs/{name}`` | unpack logs, newest first; one log |
| ``POST /api/command`` | ``{"cmd", "game_id" | "addr"}``: one of the page's actions |

Commands never wait: their outcome arrives as events, like any front-end's.
"""

from __future__ import annotations

import html
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import (
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from lanspread_core.errors import LanspreadError
from lanspread_core.frontends.vocabulary import deletion
from lanspread_core.install.unpacklog import runs
from lanspread_core.library.statedir import StateDir
from lanspread_core.runtime.peer import PeerRuntimeHandle
from lanspread_web.guard import Guard
from lanspread_web.hub import Hub

log = logging.getLogger("lanspread_web")

STATIC = Path(__file__).resolve().parent / "static"
#: the commands the page may send, and the one field each needs
COMMANDS = {
    "download": "game_id",
    "stream-install": "game_id",
    "install": "game_id",
    "update": "game_id",
    "uninstall": "game_id",
    "remove-download": "game_id",
    "cancel": "game_id",
    "connect": "addr",
    "fetch": "",
}
#: seconds between keep-alive comments on an idle event stream
KEEPALIVE = 15.0
MAX_BODY = 4096


class Guarded:
    """ASGI middleware: every HTTP request passes :class:`Guard` or gets a 403 line."""

    def __init__(self, app: ASGIApp, guard: Guard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        why = self.guard.refusal(request)
        if why is not None:
            log.warning("web page: refused %s %s: %s", request.method, request.url.path, why)
            await PlainTextResponse(f"Forbidden: {why}.\n", status_code=403)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def build_app(handle: PeerRuntimeHandle, hub: Hub, guard: Guard, state: StateDir) -> ASGIApp:
    page = (STATIC / "index.html").read_text(encoding="utf-8")

    async def index(request: Request) -> Response:
        if "token" in request.query_params:
            # the printed link: keep the token in a cookie, and out of the address bar
            response: Response = RedirectResponse("/", status_code=303)
            response.set_cookie(
                guard.cookie, guard.token, httponly=True, samesite="strict", path="/"
            )
            return response
        token = guard.token if guard.presented(request) else ""
        body = page.replace("{{TOKEN}}", html.escape(token, quote=True))
        return Response(
            body,
            media_type="text/html; charset=utf-8",
            headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
        )

    async def events(request: Request) -> Response:
        tab = hub.open_tab()

        async def stream() -> AsyncIterator[str]:
            try:
                while True:
                    for message in tab.take():
                        yield f"data: {message}\n\n"
                    if tab.closed:
                        return
                    with anyio.move_on_after(KEEPALIVE) as idle:
                        await tab.wakeup.wait()
                    if idle.cancelled_caught:
                        yield ": keep-alive\n\n"
            finally:
                hub.close_tab(tab)

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def snapshot(request: Request) -> Response:
        return Response(hub.snapshot_text(), media_type="application/json")

    async def deletion_words(request: Request) -> Response:
        gid = request.path_params["game_id"]
        op = request.query_params.get("op", "")
        if op not in ("update", "uninstall", "remove-download"):
            return _error("op must be update, uninstall or remove-download")
        name = next((g.get("name") or gid for g in hub.games if g.get("id") == gid), gid)
        try:
            changes = await handle.send({"cmd": "local-changes", "game_id": gid})
        except LanspreadError as exc:
            return _error(str(exc))
        return JSONResponse(
            {"changes": changes, "question": deletion(op, str(name), changes), "game": name}
        )

    async def unpack_logs(request: Request) -> Response:
        found = [_log_entry(p) for p in reversed(runs(state.unpack_logs))]
        return JSONResponse({"logs": found})

    async def unpack_log(request: Request) -> Response:
        name = request.path_params["name"]
        for path in runs(state.unpack_logs):  # only names that are there: no paths
            if path.name == name:
                text = await anyio.to_thread.run_sync(path.read_text, "utf-8", "replace")
                return PlainTextResponse(text)
        return PlainTextResponse("No such unpack log.\n", status_code=404)

    async def command(request: Request) -> Response:
        body = await request.body()
        if len(body) > MAX_BODY:
            return _error("the request is too large")
        try:
            data = json.loads(body)
        except ValueError:
            return _error("the request is not JSON")
        if not isinstance(data, dict):
            return _error("the request must be a JSON object")
        cmd = data.get("cmd")
        if not isinstance(cmd, str) or cmd not in COMMANDS:
            return _error(f"the page cannot send {cmd!r}; it sends {', '.join(COMMANDS)}")
        sent: dict[str, Any] = {"cmd": cmd}
        field = COMMANDS[cmd]
        if field:
            value = data.get(field)
            if not isinstance(value, str) or not value.strip():
                return _error(f"{cmd} needs {field}")
            sent[field] = value.strip()
        try:
            result = await handle.send(sent)
        except LanspreadError as exc:
            return _error(str(exc))
        return JSONResponse({"ok": True, "result": result})

    app = Starlette(
        routes=[
            Route("/", index),
            Route("/api/events", events),
            Route("/api/snapshot", snapshot),
            Route("/api/games/{game_id}/deletion", deletion_words),
            Route("/api/unpack-logs", unpack_logs),
            Route("/api/unpack-logs/{name}", unpack_log),
            Route("/api/command", command, methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
    )
    return Guarded(app, guard)


def _error(sentence: str) -> Response:
    return JSONResponse({"ok": False, "error": sentence}, status_code=400)


def _log_entry(path: Path) -> dict[str, Any]:
    # named "<yyyymmdd>-<hhmmss>-<us>-<game>-<op>.log" (install/unpacklog.py)
    parts = path.stem.split("-", 3)
    if len(parts) < 4 or not (parts[0] + parts[1]).isdigit():
        return {"name": path.name, "when": "", "what": path.stem}
    d, t = parts[0], parts[1]
    when = f"{d[:4]}-{d[4:6]}-{d[6:8]} {t[:2]}:{t[2:4]}:{t[4:6]}"
    return {"name": path.name, "when": when, "what": parts[3].replace("-", " ", 1)}
