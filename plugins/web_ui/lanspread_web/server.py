"""The page's server: uvicorn inside the peer's own event loop, under its supervisor.

uvicorn's ``serve()`` would take over SIGINT and SIGTERM, which the peer
already handles (Goodbye to every peer, then stop), and call ``sys.exit``
on a failed start. So the server is driven by its parts: ``startup`` on the
socket the front-end bound, a wait until the peer stops the service, and a
``shutdown`` bounded in time that ends the open event streams first. The
peer's stop stays within its 2 seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import anyio
import uvicorn

from lanspread_core.runtime.peer import PeerRuntimeHandle
from lanspread_web.app import build_app
from lanspread_web.frontend import WebFrontend
from lanspread_web.guard import Guard
from lanspread_web.hub import Hub

log = logging.getLogger("lanspread_web")

#: seconds a stopping server waits for open responses
GRACE = 1.0


async def serve(handle: PeerRuntimeHandle, web: WebFrontend, started: Callable[[], None]) -> None:
    """Serve the page until cancelled (the peer stops); ``started()`` once it listens."""
    hub = Hub(handle)
    guard = Guard(web.token, web.listen.host, web.listen.port, web.lan)
    app = build_app(handle, hub, guard, web.state)
    config = uvicorn.Config(
        app,
        lifespan="off",
        log_config=None,  # the peer's logging, not uvicorn's dictConfig
        log_level="warning",
        access_log=False,
        ws="none",
        timeout_graceful_shutdown=int(GRACE) or 1,
        timeout_keep_alive=5,
    )
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    sockets = [web.sock]
    async with anyio.create_task_group() as tg:
        tg.start_soon(hub.run)
        await server.startup(sockets=sockets)
        await server.on_tick(0)  # the default response headers
        started()
        try:
            await anyio.sleep_forever()
        finally:
            hub.close()  # event streams end, so their connections can close
            server.force_exit = True
            with anyio.CancelScope(shield=True), anyio.move_on_after(GRACE + 0.5):
                await server.shutdown(sockets=sockets)
