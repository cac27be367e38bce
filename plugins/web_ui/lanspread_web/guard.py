"""Who may do what on the page: the per-run token, and the Host and Origin checks.

* **Host** must name this server (its address, or ``localhost`` on loopback,
  with its port) on every request, so a DNS-rebinding page that resolved its
  own name to 127.0.0.1 is refused before anything is read.
* A request that **changes** something (POST) must carry the token in the
  ``X-Lanspread-Token`` header and an ``Origin`` equal to the page's own: a
  form or script on another site has neither.
* **Reads** need the token too (header, cookie or ``?token=``) when the page
  is served on a network address; on loopback they do not.

The token is random per run. The link the peer prints carries it; the page
keeps it in an HttpOnly, SameSite=Strict cookie and embeds it for its own
requests. Every refusal is a 403 with one line, and a warning in the log.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import socket
from dataclasses import dataclass

from starlette.requests import Request

log = logging.getLogger("lanspread_web")

HEADER = "x-lanspread-token"


@dataclass(frozen=True)
class Guard:
    token: str
    host: str
    port: int
    lan: bool

    @property
    def cookie(self) -> str:
        # cookies ignore ports: two peers' pages on one machine need two names
        return f"lanspread_token_{self.port}"

    def allowed_host(self, header: str) -> bool:
        name, _, port = header.rpartition(":")
        if not name or port != str(self.port):
            return False
        name = name.strip("[]").lower()
        if name in (self.host.lower(), "localhost", "127.0.0.1", "::1"):
            return True
        if self.host in ("0.0.0.0", "::"):
            # every address of this machine: an IP literal, or the machine's own name
            if name in (socket.gethostname().lower(), socket.getfqdn().lower()):
                return True
            try:
                ipaddress.ip_address(name)
            except ValueError:
                return False
            return True
        return False

    def matches(self, candidate: str | None) -> bool:
        return bool(candidate) and hmac.compare_digest(str(candidate), self.token)

    def presented(self, request: Request) -> bool:
        """The request carries the token: header, cookie, or the link's query."""
        return (
            self.matches(request.headers.get(HEADER))
            or self.matches(request.cookies.get(self.cookie))
            or self.matches(request.query_params.get("token"))
        )

    def refusal(self, request: Request) -> str | None:
        """Why ``request`` is refused, in one line; ``None`` when it may go on."""
        host = request.headers.get("host", "")
        if not self.allowed_host(host):
            return f"Host {host or '(none)'!r} is not this page's address"
        if request.method in ("GET", "HEAD"):
            if self.lan and not self.presented(request):
                return "this page is served on the network: open the link with its token"
            return None
        if request.method != "POST":
            return f"method {request.method} is not allowed"
        origin = request.headers.get("origin")
        if origin != f"http://{host}":
            return f"Origin {origin or '(none)'!r} is not this page's own"
        if not self.matches(request.headers.get(HEADER)):
            return "a request that changes something needs the page's token"
        return None
