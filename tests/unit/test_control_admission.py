"""The control server's connection caps: a new connection over the cap for its
address gets no answer, while another address still connects.

A real aioquic server (:class:`CappedQuicServer`) and raw clients from two
loopback addresses.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import anyio
import pytest
from aioquic.asyncio.protocol import QuicConnectionProtocol

from lanspread_core.control.admission import CappedQuicServer
from lanspread_core.control.config import server_configuration
from support.rogue import rogue_control, rogue_identity


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_a_connection_over_the_cap_of_its_address_is_not_answered(tmp_path: Path) -> None:
    identity = rogue_identity(tmp_path / "server")
    client = rogue_identity(tmp_path / "client")
    config = server_configuration(identity)
    loop = asyncio.get_running_loop()
    transport, server = await loop.create_datagram_endpoint(
        lambda: CappedQuicServer(
            configuration=config, create_protocol=QuicConnectionProtocol, max_per_address=1
        ),
        local_addr=("127.0.0.1", 0),
    )
    port = transport.get_extra_info("sockname")[1]
    try:
        async with rogue_control(client, "127.0.0.1", port, source="127.0.0.9"):
            with pytest.raises(TimeoutError):
                async with rogue_control(
                    client, "127.0.0.1", port, source="127.0.0.9", timeout=1.5
                ):
                    pass
            async with rogue_control(client, "127.0.0.1", port, source="127.0.0.10"):
                pass  # another machine is not held to this one's cap
    finally:
        server.close()
        await anyio.sleep(0)
