"""The web page's guard (token, Host, Origin) and how its front-end refuses a bad start."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from lanspread_web.frontend import WebFrontend
from lanspread_web.guard import Guard
from starlette.requests import Request

from lanspread_core.config import PeerConfig
from lanspread_core.errors import UsageError
from support.cli import run_cli

TOKEN = "s3cret-token"
LOOP = Guard(TOKEN, "127.0.0.1", 47080, lan=False)
LAN = Guard(TOKEN, "0.0.0.0", 47080, lan=True)


def request(method: str = "GET", path: str = "/", query: str = "", **headers: str) -> Request:
    raw = [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()]
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "query_string": query.encode(),
        "headers": raw,
    }
    return Request(scope)


OWN = {"host": "127.0.0.1:47080", "origin": "http://127.0.0.1:47080"}


def test_loopback_reads_need_no_token_but_changes_do() -> None:
    assert LOOP.refusal(request(host="127.0.0.1:47080")) is None
    assert LOOP.refusal(request(host="localhost:47080")) is None
    why = LOOP.refusal(request("POST", **OWN))
    assert why is not None and "token" in why
    assert LOOP.refusal(request("POST", x_lanspread_token=TOKEN, **OWN)) is None


def test_a_foreign_origin_or_host_is_refused_even_with_the_token() -> None:
    foreign = {**OWN, "origin": "http://evil.example"}
    why = LOOP.refusal(request("POST", x_lanspread_token=TOKEN, **foreign))
    assert why is not None and "Origin" in why
    no_origin = {"host": OWN["host"]}
    assert LOOP.refusal(request("POST", x_lanspread_token=TOKEN, **no_origin)) is not None
    rebound = LOOP.refusal(request(host="evil.example:47080"))  # DNS rebinding
    assert rebound is not None and "Host" in rebound
    assert LOOP.refusal(request(host="127.0.0.1:9999")) is not None  # another port
    assert LOOP.refusal(request("PUT", x_lanspread_token=TOKEN, **OWN)) is not None


def test_on_a_lan_address_reads_need_the_token_too() -> None:
    host = {"host": "192.168.1.20:47080"}
    assert LAN.refusal(request(**host)) is not None
    assert LAN.refusal(request(cookie=f"{LAN.cookie}={TOKEN}", **host)) is None
    assert LAN.refusal(request(query=f"token={TOKEN}", **host)) is None
    assert LAN.refusal(request(query="token=guess", **host)) is not None
    assert LAN.refusal(request(host="evil.example:47080")) is not None


def config(tmp_path: Path, **options: object) -> PeerConfig:
    return PeerConfig(tmp_path / "games", tmp_path / "state", ui_options=dict(options))


def test_a_lan_address_needs_the_explicit_flag(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--web-lan"):
        WebFrontend(config(tmp_path, web_listen="0.0.0.0:0"))
    web = WebFrontend(config(tmp_path, web_listen="0.0.0.0:0", web_lan=True))
    try:
        assert web.lan and web.url.startswith("http://127.0.0.1:")
    finally:
        web.sock.close()


def test_a_port_in_use_is_one_line_before_the_peer_starts(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(UsageError, match=f"port {port} is in use"):
            WebFrontend(config(tmp_path, web_listen=f"127.0.0.1:{port}"))
        proc = run_cli(
            "run",
            "--ui",
            "web",
            "--web-listen",
            f"127.0.0.1:{port}",
            "--games-dir",
            tmp_path / "games",
            "--state-dir",
            tmp_path / "state",
            "--discovery",
            "static",
            "--listen",
            "127.0.0.1:0",
            timeout=30,
        )
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and f"port {port} is in use" in proc.stderr


def test_an_unknown_ui_names_the_installed_ones(tmp_path: Path) -> None:
    proc = run_cli(
        "run", "--ui", "nosuch", "--games-dir", tmp_path / "g", "--state-dir", tmp_path / "s"
    )
    assert proc.returncode == 2
    assert "front-end 'nosuch' is not installed" in proc.stderr and "web" in proc.stderr
