"""The convenience base class a provider derives from to get ``unpack`` for free."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lanspread_core.archive.protocol import Entry, EntrySink, ProbeResult, SinkWrapper
from lanspread_core.archive.treewriter import unpack_via_stream


class ArchiveProvider:
    """Convenience base: implement ``probe``, ``entries`` and ``stream``; get ``unpack``.

    The inherited :meth:`unpack` drives :meth:`stream` into the core's
    :class:`~lanspread_core.archive.treewriter.TreeWriter`, which owns the
    entry-safety and verification rules, so a provider never writes to disk
    itself and never checks a name. An install always goes that way: the
    core does not call a provider's own ``unpack``.
    """

    def probe(self, archives: Sequence[Path]) -> ProbeResult:
        raise NotImplementedError

    def entries(self, archives: Sequence[Path]) -> list[Entry]:
        raise NotImplementedError

    def stream(self, archives: Sequence[Path], sink: EntrySink) -> None:
        raise NotImplementedError

    def unpack(
        self, archives: Sequence[Path], dest: Path, sink_wrapper: SinkWrapper | None = None
    ) -> None:
        unpack_via_stream(self, archives, dest, sink_wrapper)
