"""The ``web`` front-end: the page's address, its token, and the server as a peer service.

The listening socket is bound when the front-end is built, before the peer
starts, so a port in use (or a LAN address without ``--web-lan``) is one line
and no peer. The server itself runs as a service of the peer, under its
supervisor, in the peer's own event loop (:mod:`lanspread_web.server`).
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import secrets
import socket
import sys
import webbrowser
from typing import Any

import anyio

from lanspread_core.config import HostPort, PeerConfig
from lanspread_core.errors import UsageError
from lanspread_core.library.statedir import StateDir
from lanspread_core.runtime.peer import LocalService, PeerRuntimeHandle
from lanspread_web.plugin import DEFAULT_PORT

log = logging.getLogger(__name__)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(listen: HostPort) -> socket.socket:
    """A listening TCP socket on ``listen``, or one sentence saying why not."""
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    try:
        sock = socket.create_server((listen.host, listen.port), family=family, backlog=64)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(
                f"the web page's port {listen.port} is in use (another peer's page?);"
                f" choose another with --web-listen {listen.host}:PORT"
            ) from None
        raise UsageError(f"cannot serve the web page on {listen}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


class WebFrontend:
    """``lanspread run --ui web`` (beside the console) or ``--frontend web`` (alone)."""

    name = "web"

    def __init__(self, config: PeerConfig) -> None:
        options: dict[str, Any] = config.ui_options
        try:
            listen = HostPort.parse(
                str(options.get("web_listen") or f"127.0.0.1:{DEFAULT_PORT}"), DEFAULT_PORT
            )
        except ValueError as exc:
            raise UsageError(f"--web-listen: {exc}") from None
        self.lan = not is_loopback(listen.host)
        if self.lan and not options.get("web_lan"):
            raise UsageError(
                f"--web-listen {listen} is not a loopback address; add --web-lan to serve"
                " the page to the network (anyone with its link can then drive this peer)"
            )
        self.open_browser = bool(options.get("open_browser"))
        self.state = StateDir(config.state_dir)
        self.token = secrets.token_urlsafe(24)
        self.sock = bind(listen)
        host, port = self.sock.getsockname()[:2]
        self.listen = HostPort(listen.host, port)
        shown = "127.0.0.1" if listen.host in ("0.0.0.0", "::") else listen.host
        self.origin = f"http://{HostPort(shown, port)}"
        self.url = f"{self.origin}/?token={self.token}"
        self.services = [LocalService("web", self._serve)]

    async def _serve(self, handle: PeerRuntimeHandle, task_status: Any) -> None:
        from lanspread_web.server import serve

        def started() -> None:
            self._announce()
            task_status.started()

        await serve(handle, self, started)

    def _announce(self) -> None:
        # stderr: under --frontend jsonl, stdout is the protocol
        print(f"Web page: {self.url}", file=sys.stderr, flush=True)
        if self.lan:
            print(
                f"warning: the web page is served on {self.listen}, a network address:"
                " anyone with this link can drive this peer",
                file=sys.stderr,
                flush=True,
            )
        log.info("web page at %s/ (the printed link carries its token)", self.origin)

    async def run(self, handle: PeerRuntimeHandle) -> int:
        if self.open_browser:
            opened = await anyio.to_thread.run_sync(webbrowser.open, self.url)
            if not opened:
                log.warning("no browser could be opened; open %s yourself", self.url)
        await handle.wait_stopped()
        return 1 if handle.failure else 0
