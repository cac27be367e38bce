"""Per-file hashes of an unpacked tree: taken from a provider's stream, and held to.

The catalog may list, for a game's version, the BLAKE3 hash of every file its
archives unpack to (``hashes.files``: a POSIX path under ``local/`` to hex).
:func:`tree_hashes` computes that map in one streamed pass through a provider,
with nothing extracted to disk. :class:`FileCheck` holds a tree being written
(an install's unpack, a stream-install's frames) to it: the listing must name
exactly the listed files before a byte is written, and each file's bytes must
hash to its digest when the file ends. CRC32 in archive headers only proves a
file is what its own archive says; these hashes prove it is the file the
catalog's author packed.

``blake3`` releases the GIL while it hashes, so hashing in the thread that
writes costs little beside the receiving thread (``benchmarks/bench_stream.py``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import blake3

from lanspread_core.archive.entrypath import safe_relpath
from lanspread_core.archive.listing import Listing, stream_listed
from lanspread_core.archive.protocol import Entry, EntryKind, EntrySink, StreamInstallProvider
from lanspread_core.errors import VerificationError


def file_key(path: str) -> str:
    """The catalog's name for archive entry ``path``: a plain relative POSIX path."""
    return safe_relpath(path).as_posix()


def short(digest: str) -> str:
    return f"{digest[:12]}…"


class HashingSink:
    """An :class:`EntrySink` that hashes each file's bytes on their way to ``inner``.

    ``on_file(key, digest)`` is called as each file ends, after ``inner`` took it.
    """

    def __init__(
        self, inner: EntrySink | None, on_file: Callable[[str, str], None] | None = None
    ) -> None:
        self._inner = inner
        self._on_file = on_file
        self._hasher: blake3.blake3 | None = None
        self.hashes: dict[str, str] = {}

    def begin(self, entry: Entry) -> None:
        if self._inner is not None:
            self._inner.begin(entry)
        self._hasher = blake3.blake3() if entry.kind is EntryKind.FILE else None

    def write(self, data: bytes | memoryview) -> None:
        if self._inner is not None:
            self._inner.write(data)
        if self._hasher is not None:
            self._hasher.update(data)

    def end(self, entry: Entry) -> None:
        if self._inner is not None:
            self._inner.end(entry)
        hasher, self._hasher = self._hasher, None
        if hasher is None:
            return
        key, digest = file_key(entry.path), hasher.hexdigest()
        self.hashes[key] = digest
        if self._on_file is not None:
            self._on_file(key, digest)


def tree_hashes(
    provider: StreamInstallProvider,
    archives: Sequence[Path],
    listing: Listing | None = None,
    sink_wrapper: Callable[[EntrySink], EntrySink] | None = None,
) -> dict[str, str]:
    """BLAKE3 hex of every file ``archives`` unpack to, by catalog name (blocking).

    One streamed pass, held to the checked listing (``listing``, or the
    provider's, checked first); ``sink_wrapper`` may watch it (progress,
    cancel). A file an archive lists twice counts as its last copy, as
    unpacking leaves it.
    """
    hashing = HashingSink(None)
    stream_listed(provider, archives, sink_wrapper(hashing) if sink_wrapper else hashing, listing)
    return dict(sorted(hashing.hashes.items()))


class FileCheck:
    """Holds a tree to the catalog's per-file hashes of it.

    :param expected: catalog name to BLAKE3 hex, every file of the tree.
    :param source: what delivers the tree, as the subject of a sentence:
        ``"the stream from peer lan-b (4f2a9c01)"``, ``"the download of aurora"``.
    """

    def __init__(self, expected: Mapping[str, str], source: str) -> None:
        self.expected = dict(expected)
        self.source = source
        #: copies of each file still to come, from the listing: only the last counts
        self._copies: Counter[str] = Counter()

    def check_listing(self, listing: Listing) -> None:
        """Refuse a listing that lacks a listed file or holds one the catalog does not list.

        :raises VerificationError: naming the first such file.
        """
        self._copies = Counter(
            file_key(e.path) for e in listing.entries if e.kind is EntryKind.FILE
        )
        files = set(self._copies)
        missing = sorted(self.expected.keys() - files)
        if missing:
            raise VerificationError(
                f"{self.source} lacks {missing[0]!r}, which the catalog lists"
                f"{_and_more(len(missing))}; not installing it"
            )
        extra = sorted(files - self.expected.keys())
        if extra:
            raise VerificationError(
                f"{self.source} has {extra[0]!r}, which the catalog does not list"
                f"{_and_more(len(extra))}; not installing it"
            )

    def check_file(self, key: str, digest: str) -> None:
        """Refuse file ``key`` unless its bytes hashed to the catalog's digest.

        A file the listing holds twice is checked at its last copy, the one
        that stays on disk (as :func:`tree_hashes` hashed it).
        """
        if self._copies[key] > 1:
            self._copies[key] -= 1
            return
        want = self.expected.get(key)
        if want is None:
            raise VerificationError(
                f"{self.source} has {key!r}, which the catalog does not list; not installing it"
            )
        if digest != want:
            raise VerificationError(
                f"{key!r} in {self.source} has BLAKE3 {short(digest)},"
                f" not the {short(want)} the catalog lists; not installing it"
            )

    def sink(self, inner: EntrySink) -> EntrySink:
        """``inner`` with every file checked as it ends (after ``inner`` wrote it)."""
        return HashingSink(inner, self.check_file)


def _and_more(count: int) -> str:
    return f" (and {count - 1} more)" if count > 1 else ""
