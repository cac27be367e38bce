"""Discovery by multicast DNS (DNS-SD service ``_lanspread._udp.local.``), via zeroconf.

Each peer registers one service named after its ``peer_id``. The SRV record
carries the QUIC control port, the TXT record ``peer_id``, ``proto_ver``,
``library_rev``, ``port``, ``data_port`` and ``name``; a new ``library_rev`` is
re-announced so others can refresh without polling. The browser reports every
other peer it resolves and reports it gone on a goodbye (or when its records
expire from the cache).

zeroconf's asyncio API runs on the event loop that creates it and calls the
browser's handlers on that loop (the sink's contract). The handlers only
schedule work; resolving runs in this backend's task group.

Known peers are reported again every :data:`REFRESH` seconds, like static
addresses, so the runtime retries one it dropped after a network blip. A
refresh resolves from the cache when the peer's records are fresh and asks
the network otherwise; a peer that stops answering stops being reported.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
from collections.abc import Iterable

import anyio
import anyio.abc
import ifaddr
from zeroconf import (
    DNSQuestionType,
    InterfaceChoice,
    IPVersion,
    NonUniqueNameException,
    ServiceStateChange,
    Zeroconf,
)
from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

from lanspread_core.config import PeerConfig
from lanspread_core.discovery.base import Announcement, DiscoverySink, SeenPeer
from lanspread_core.errors import LanspreadError

log = logging.getLogger(__name__)

SERVICE_TYPE = "_lanspread._udp.local."
#: milliseconds one resolution (SRV, TXT, A) may take
RESOLVE_TIMEOUT_MS = 3000
#: seconds between re-reports of the peers we know
REFRESH = 10.0
#: seconds cancellation may spend on goodbye packets and closing sockets
CLOSE_TIMEOUT = 1.0
#: Ask for multicast answers. zeroconf's default first question asks for a
#: unicast answer, and a unicast datagram to port 5353 reaches only one of the
#: sockets bound there: with two peers on one machine (tests, or a second
#: user account) one of them would miss it.
QUESTION_TYPE = DNSQuestionType.QM

_LABEL = re.compile(r"^[A-Za-z0-9_-]{1,63}$")
_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def instance_name(peer_id: str) -> str:
    """The full service name for ``peer_id`` (a hash when it is not a plain DNS label)."""
    label = peer_id if _LABEL.match(peer_id) else hashlib.sha256(peer_id.encode()).hexdigest()[:32]
    return f"{label}.{SERVICE_TYPE}"


def _server_name(peer_id: str) -> str:
    return f"lanspread-{hashlib.sha256(peer_id.encode()).hexdigest()[:16]}.local."


def _local_networks() -> list[_IPNetwork]:
    nets: list[_IPNetwork] = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            host = ip.ip if isinstance(ip.ip, str) else ip.ip[0]
            try:
                nets.append(ipaddress.ip_network(f"{host}/{ip.network_prefix}", strict=False))
            except ValueError:
                continue
    return nets


def _own_addresses(given: Iterable[str]) -> list[str]:
    """What to put in our A records: ``given`` (minus wildcards), else every
    non-loopback IPv4 address of this machine (loopback if that is all there is)."""
    addrs = []
    for text in given:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            log.warning("ignoring announced address %r: not an IP address", text)
            continue
        if not ip.is_unspecified:
            addrs.append(str(ip))
    if addrs:
        return addrs
    found = {
        str(ip.ip)
        for adapter in ifaddr.get_adapters()
        for ip in adapter.ips
        if ip.is_IPv4 and isinstance(ip.ip, str)
    }
    usable = sorted(a for a in found if not ipaddress.ip_address(a).is_loopback)
    return usable or sorted(found) or ["127.0.0.1"]


def pick_address(addresses: Iterable[str], local: Iterable[_IPNetwork] = ()) -> str | None:
    """The address to reach a peer on: IPv4 first, then one on a network we are
    on, then not loopback or link-local; ``None`` for an empty list."""
    local = list(local)
    best: tuple[tuple[bool, bool, bool, bool], str] | None = None
    for text in addresses:
        try:
            ip = ipaddress.ip_address(text.split("%", 1)[0])
        except ValueError:
            continue
        rank = (
            ip.version != 4,
            not any(ip in net for net in local if net.version == ip.version),
            ip.is_loopback,
            ip.is_link_local,
        )
        if best is None or rank < best[0]:
            best = (rank, text)
    return best[1] if best else None


def _text(props: dict[bytes, bytes | None], key: str) -> str | None:
    value = props.get(key.encode())
    return value.decode("utf-8", "replace") if value is not None else None


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _same(a: AsyncServiceInfo, b: AsyncServiceInfo) -> bool:
    return (a.properties, a.port, a.addresses) == (b.properties, b.port, b.addresses)


class MdnsDiscovery:
    """Announces this peer and browses for others on every IPv4 interface."""

    name = "mdns"

    def __init__(self, config: PeerConfig | None = None, *, refresh: float = REFRESH) -> None:
        self.config = config
        self.refresh = refresh
        self._me: Announcement | None = None
        self._changed: anyio.Event | None = None

    async def run(
        self,
        me: Announcement,
        sink: DiscoverySink,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        self._me = me
        self._changed = anyio.Event()
        aiozc = AsyncZeroconf(interfaces=InterfaceChoice.All, ip_version=IPVersion.V4Only)
        duplicate = False
        try:
            async with anyio.create_task_group() as tg:
                browser = _Browser(aiozc.zeroconf, me.peer_id, sink, tg)
                try:
                    browser.start()  # before registering: peers already up are seen sooner
                    info = self._service_info(me)
                    try:
                        announced = await aiozc.async_register_service(info)
                    except NonUniqueNameException:
                        duplicate = True
                        tg.cancel_scope.cancel()
                        return
                    log.debug("announced %s as %s", me.peer_id, info.name)
                    task_status.started()
                    tg.start_soon(browser.refresh_loop, self.refresh)
                    await announced
                    await self._announce_changes(aiozc, info)
                finally:
                    with anyio.CancelScope(shield=True):
                        await browser.stop()
        finally:
            self._changed = None
            with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_TIMEOUT):
                await aiozc.async_unregister_all_services()  # the goodbye packets
                await aiozc.async_close()
            if duplicate:  # raised out here, not wrapped in the task group's ExceptionGroup
                raise LanspreadError(
                    f"another machine on the LAN announces peer id {me.peer_id}; "
                    "was its state directory copied to this one?"
                )

    async def update(self, me: Announcement) -> None:
        """Remember ``me``; the running announcer re-announces it (changes coalesce)."""
        self._me = me
        if self._changed is not None:
            self._changed.set()

    async def _announce_changes(self, aiozc: AsyncZeroconf, info: AsyncServiceInfo) -> None:
        while True:
            assert self._changed is not None and self._me is not None
            await self._changed.wait()
            self._changed = anyio.Event()
            new = self._service_info(self._me)
            if _same(new, info):
                continue
            info = new
            await (await aiozc.async_update_service(info))

    def _service_info(self, me: Announcement) -> AsyncServiceInfo:
        name = me.name or (self.config.name if self.config else "")
        props = {
            "peer_id": me.peer_id,
            "proto_ver": str(me.proto_ver),
            "library_rev": str(me.library_rev),
            "port": str(me.control_port),
            "data_port": str(me.data_port),
            "name": name.encode()[:100].decode("utf-8", "ignore"),
        }
        return AsyncServiceInfo(
            SERVICE_TYPE,
            instance_name(me.peer_id),
            port=me.control_port,
            properties=props,
            server=_server_name(me.peer_id),
            parsed_addresses=_own_addresses(me.addresses),
        )


class _Browser:
    """Turns zeroconf's service events into ``seen``/``gone`` calls on the sink."""

    def __init__(
        self, zc: Zeroconf, peer_id: str, sink: DiscoverySink, tg: anyio.abc.TaskGroup
    ) -> None:
        self.zc = zc
        self.own_name = instance_name(peer_id).lower()
        self.peer_id = peer_id
        self.sink = sink
        self.tg = tg
        self.present: set[str] = set()  # services the browser currently lists
        self.names: dict[str, str] = {}  # lower-cased service name -> as announced
        self.known: dict[str, str] = {}  # lower-cased service name -> peer_id, once resolved
        self.resolving: set[str] = set()
        self.dirty: set[str] = set()  # changed again while being resolved
        self.local = _local_networks()
        self._browser: AsyncServiceBrowser | None = None

    def start(self) -> None:
        self._browser = AsyncServiceBrowser(
            self.zc, [SERVICE_TYPE], handlers=[self.on_change], question_type=QUESTION_TYPE
        )

    async def stop(self) -> None:
        if self._browser is not None:
            await self._browser.async_cancel()
            self._browser = None

    def on_change(
        self,
        zeroconf: Zeroconf,
        service_type: str,
        name: str,
        state_change: ServiceStateChange,
    ) -> None:
        key = name.lower()
        if key == self.own_name or self._browser is None:
            return
        if state_change is ServiceStateChange.Removed:
            self.present.discard(key)
            self.names.pop(key, None)
            self.dirty.discard(key)
            peer_id = self.known.pop(key, None)
            if peer_id is not None:
                log.debug("mdns: %s said goodbye", peer_id)
                self.sink.gone(peer_id)
            return
        self.present.add(key)
        self.names[key] = name
        self._schedule(key)

    def _schedule(self, key: str) -> None:
        if key in self.resolving:
            self.dirty.add(key)
        else:
            self.resolving.add(key)
            self.tg.start_soon(self._resolve, key)

    async def _resolve(self, key: str) -> None:
        try:
            while key in self.present:
                self.dirty.discard(key)
                name = self.names.get(key, key)
                info = AsyncServiceInfo(SERVICE_TYPE, name)
                if await info.async_request(self.zc, RESOLVE_TIMEOUT_MS, QUESTION_TYPE):
                    if key in self.present:
                        self._report(key, info)
                elif key in self.known:
                    log.debug("mdns: %s did not answer; not reporting it again", name)
                if key not in self.dirty:
                    break
        finally:
            self.resolving.discard(key)

    def _report(self, key: str, info: AsyncServiceInfo) -> None:
        props = info.properties
        peer_id = _text(props, "peer_id")
        if not peer_id or peer_id == self.peer_id:
            return
        port = info.port or _int(_text(props, "port"))
        host = pick_address(info.parsed_scoped_addresses(), self.local)
        if not port or host is None:
            log.debug("mdns: %s has no usable address or port", info.name)
            return
        old = self.known.get(key)
        if old is not None and old != peer_id:
            self.sink.gone(old)
        self.known[key] = peer_id
        rev = _int(_text(props, "library_rev"))
        self.sink.seen(SeenPeer(host, port, peer_id, rev, "mdns"))

    async def refresh_loop(self, interval: float) -> None:
        while True:
            await anyio.sleep(interval)
            self.local = _local_networks()
            for key in list(self.known):
                if key not in self.resolving:
                    self._schedule(key)
