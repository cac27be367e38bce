"""The receiving side of a stream-install: frames from a socket into a staging tree.

The receiver trusts nothing the sender says. The entry list is checked before
a byte is written (no absolute paths, ``..``, links or devices), and the
frames are held to it (:class:`~lanspread_core.archive.listing.Announced`):
headers in the announced order, no file longer than announced. Every file is
verified: its size, and its CRC32 — against the archive's header CRC when the
archive has one, and always against the CRC the sender computed. A file of
zero bytes may come without a header CRC; a non-empty one is never accepted
without a matching CRC.

CRC32s prove only that a file is what the sender's own archive says. When the
catalog lists per-file hashes for the game (``check``), the entry list must
name exactly those files, and each file's BLAKE3 must match as it ends
(:class:`~lanspread_core.archive.filehashes.FileCheck`): a sender that holds
the agreed archives but streams other files is refused.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lanspread_core.archive.filehashes import FileCheck
from lanspread_core.archive.listing import Announced, check_entries
from lanspread_core.archive.protocol import Entry, EntryKind, EntrySink
from lanspread_core.archive.treewriter import TreeWriter
from lanspread_core.dataplane.client import DataConnection
from lanspread_core.errors import Cancelled
from lanspread_core.system.faults import fault_point
from lanspread_core.transfer.handoff import Handoff
from lanspread_core.wire.schema import clip
from lanspread_core.wire.streamframes import (
    DATA,
    END,
    ENTRIES,
    ERROR,
    FILE_END,
    HEADER,
    FrameReader,
    StreamError,
    crc32_of,
    field,
)

#: Seconds to connect to the sender, and the longest it may send nothing.
STREAM_TIMEOUT = 30.0


def entry_of(data: Any) -> Entry:
    """An entry as a frame carries it, every field of its own type.

    :raises StreamError: not an object, a field missing or of the wrong type.
    """
    if not isinstance(data, dict):
        raise StreamError(f"an entry is {type(data).__name__}, not an object")
    try:
        kind = EntryKind(field(data, "kind", str))
    except ValueError:
        raise StreamError(f"unknown entry kind {str(data['kind'])[:40]!r}") from None
    crc = data.get("crc32")
    return Entry(
        path=field(data, "path", str),
        kind=kind,
        size=field(data, "size", int),
        crc32=None if crc is None else crc32_of(crc),
    )


@dataclasses.dataclass
class Received:
    files: int = 0
    bytes: int = 0
    total: int = 0
    format: str = ""


def receive_stream(
    conn: DataConnection,
    dest: Path,
    cancel: threading.Event,
    on_total: Callable[[int], None],
    on_bytes: Callable[[int], None],
    check: FileCheck | None = None,
) -> Received:
    """Receive a whole stream into ``dest`` (an empty staging folder).

    With ``check`` (the catalog's per-file hashes) the entry list is held to
    it before a byte is written, and every file as it ends.

    ``conn`` has the stream-install's request sent (:meth:`DataLink.request
    <lanspread_core.dataplane.link.DataLink.request>`); its owner closes it.

    :raises SourceRefused: the sender refused (no provider, an unsafe archive).
    """
    reader = FrameReader(conn.open_stream(cancel=cancel), cancel=cancel, timeout=STREAM_TIMEOUT)
    kind, payload = reader.next()
    if kind != ENTRIES:
        raise StreamError("the stream did not start with its entry list")
    listing_json = reader.json(payload)
    entries = [entry_of(e) for e in field(listing_json, "entries", list)]
    listing = check_entries(entries)
    if check is not None:
        check.check_listing(listing)
    got = Received(total=listing.total)
    got.format = str(listing_json.get("format", ""))[:100]
    on_total(got.total)
    writer = TreeWriter(dest, listing)
    # hashed in the writing thread: blake3 lets go of the GIL, so receiving goes on
    sink: EntrySink = writer if check is None else check.sink(writer)
    announced = Announced(listing)
    current: Entry | None = None
    # the disk writes (and CRCs) run in a second thread while this one receives
    disk = Handoff("lanspread-stream-writer")
    try:
        while True:
            if cancel.is_set():
                raise Cancelled("the stream-install was cancelled")
            kind, payload = reader.next()
            if kind == HEADER:
                current = announced.begin(entry_of(reader.json(payload)))
                if current is None:  # an archive's own top folder: nothing to write
                    continue
                disk.submit(sink.begin, current)
                if current.kind is EntryKind.DIR:
                    announced.end(current)
                    disk.submit(sink.end, current)
                    current = None
            elif kind == DATA:
                announced.data(len(payload))
                disk.submit(sink.write, bytes(payload))
                got.bytes += len(payload)
                on_bytes(len(payload))
            elif kind == FILE_END:
                if current is None:
                    raise StreamError("a file end arrived outside a file")
                sent = crc32_of(reader.json(payload).get("crc32"))
                if current.crc32 is not None and current.crc32 != sent:
                    raise StreamError(f"{current.path!r}: the sender's CRC32 is not the archive's")
                announced.end(current)
                disk.submit(sink.end, dataclasses.replace(current, crc32=sent))
                got.files += 1
                current = None
                if got.files == 1:
                    fault_point("stream-install.receiving")
            elif kind == ERROR:
                error = str(reader.json(payload).get("error"))
                raise StreamError(f"the sending peer failed: {clip(error, 300)}")
            elif kind == END:
                announced.finish()
                disk.close()
                return got
            else:
                raise StreamError(f"unexpected {kind.decode()} frame")
    except ValueError as exc:
        disk.abandon()
        raise StreamError(f"a stream frame is malformed: {exc}") from None
    except BaseException:
        disk.abandon()
        raise
    finally:
        writer.close()
