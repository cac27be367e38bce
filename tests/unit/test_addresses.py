"""Addresses and ports: what --listen, --peer and --data-port mean, and the
one sentence a port in use gets."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from lanspread_core.cli.peer import make_config
from lanspread_core.config import DEFAULT_PORT, HostPort, PeerConfig, default_name, host_name
from lanspread_core.control.errors import ListenError
from lanspread_core.dataplane.errors import DataListenError
from lanspread_core.events import Ready
from lanspread_core.frontends.console import header_lines
from lanspread_core.runtime.peer import listen_failure
from lanspread_core.system.netaddr import lan_addresses

ROOT = Path(__file__).resolve().parents[2]


def test_a_peer_on_another_port_than_the_default_is_named_with_it() -> None:
    assert default_name(DEFAULT_PORT) == host_name()
    assert default_name(0) == host_name()  # any free port: none to show yet
    assert default_name(24471) == f"{host_name()}:24471"


def test_listen_with_a_port_alone_means_that_port_on_every_address() -> None:
    assert HostPort.listen("47000") == HostPort("0.0.0.0", 47000)
    assert HostPort.listen("127.0.0.1:0") == HostPort("127.0.0.1", 0)
    assert HostPort.listen("10.0.0.5") == HostPort("10.0.0.5", DEFAULT_PORT)
    assert HostPort.listen("[::1]:7") == HostPort("::1", 7)
    with pytest.raises(ValueError, match="up to 65535"):
        HostPort.listen("70000")


def test_a_peer_without_a_port_takes_the_default_port() -> None:
    assert HostPort.parse("bob") == HostPort("bob", DEFAULT_PORT)
    assert HostPort.parse("bob:7000") == HostPort("bob", 7000)
    assert HostPort.parse("[fe80::1]") == HostPort("fe80::1", DEFAULT_PORT)
    with pytest.raises(ValueError, match="a port without a host"):
        HostPort.parse("47000")


def _kw(**over: object) -> dict[str, object]:
    kw: dict[str, object] = {
        "games_dir": Path("/g"),
        "state_dir": Path("/s"),
        "catalog": None,
        "provider": "auto",
        "discovery": "mdns",
        "peers": (),
        "listen": HostPort.listen(f"0.0.0.0:{DEFAULT_PORT}"),
        "data_port": None,
        "name": "",
        "ping_interval": 2.0,
        "stale_timeout": 8.0,
    }
    kw.update(over)
    return kw


def test_the_ports_are_fixed_by_default_and_the_data_port_follows_the_control_port() -> None:
    config = make_config(_kw())
    assert (config.listen.port, config.data_port) == (DEFAULT_PORT, DEFAULT_PORT)
    assert make_config(_kw(listen=HostPort.listen("47000"))).data_port == 47000
    assert make_config(_kw(listen=HostPort.listen("127.0.0.1:0"))).data_port == 0
    assert make_config(_kw(data_port=47100)).data_port == 47100
    assert "data_port" not in make_config(_kw(data_port=47100)).ui_options
    default = PeerConfig(Path("/g"), Path("/s"))
    assert (default.listen.port, default.data_port) == (DEFAULT_PORT, DEFAULT_PORT)


def test_the_default_port_is_documented() -> None:
    for doc in ("README.md", "docs/user-guide.md"):
        assert str(DEFAULT_PORT) in (ROOT / doc).read_text(encoding="utf-8"), doc


def test_a_port_in_use_is_one_sentence_that_names_the_fix() -> None:
    config = make_config(_kw())
    taken = ListenError("cannot listen", errno=errno.EADDRINUSE)
    text = listen_failure(taken, config)
    assert f"UDP port {DEFAULT_PORT}" in text and f"--listen {DEFAULT_PORT + 1}" in text
    assert "\n" not in text and text.count("in use") == 1
    # a data port given on its own moves on its own
    config = make_config(_kw(data_port=47100))
    text = listen_failure(DataListenError("cannot listen", errno=errno.EADDRINUSE), config)
    assert "TCP port 47100" in text and "--data-port 47101" in text
    # an address that is not this machine's
    config = make_config(_kw(listen=HostPort.listen("bob")))
    text = listen_failure(ListenError("no", errno=-2), config)
    assert "bob: it is not an address of this machine" in text


def _ready(control: str) -> Ready:
    return Ready(
        peer_id="a" * 32,
        name="alice",
        version="0",
        control=control,
        listen=[control],
        data_port=47001,
        games_dir="/g",
        state_dir="/s",
    )


def test_the_header_names_the_lan_address_a_friend_gives_to_peer() -> None:
    config = PeerConfig(Path("/g"), Path("/s"))
    created = {"games": False, "state": False}
    lines = header_lines(_ready("0.0.0.0:47000"), config, created)
    assert "  ports         UDP 47000 (peers) and TCP 47001 (downloads), on every address" in lines
    found = lan_addresses()
    if found:
        assert f"  this machine  {', '.join(found)}" in lines
        assert lines[-1] == f"Friends can add you with --peer {found[0]}:47000"
    else:
        assert lines[-1] == "Only this machine can reach this peer (no LAN address found)."
    lines = header_lines(_ready("127.0.0.1:47000"), config, created)
    assert lines[-1] == "Only this machine can reach this peer (it listens on 127.0.0.1)."
