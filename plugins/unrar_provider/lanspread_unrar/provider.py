"""The ``unrar`` archive provider: RAR 3 and RAR 5, solid and multi-volume, in one pass.

Two readers, each for what it does best:

* ``rarfile`` (pure Python, headers only) decides :meth:`UnrarProvider.probe`:
  format, solid, encryption, which files a multi-volume set spans, whether a
  file in the list is a continuation volume (``NeedFirstVolume``), and whether
  every volume ends with its end-of-archive block.
* The official unrar library (through ``unrar2-cffi``, see :mod:`._unrar`)
  lists the entries and produces the bytes, so names, kinds and checksums come
  from the same code that unpacks them.

What was measured with unrar2-cffi 0.5.0 (unrar 7.x) and rarfile 4.5:

* Volume naming: both find the next volume of a new-style set whatever the
  extension, because both increment the number in ``.partN`` and keep the
  extension: ``game.part1.eti`` leads to ``game.part2.eti``. No renaming or
  symlink directory is needed. Old-style sets (``.rar``, ``.r00``, ...) are
  found by the same rule as RAR itself (``x.eti`` would need ``x.e00``); a
  volume neither library can find by RAR's rules is reported as missing.
* A continuation volume opened on its own is refused by unrar with bad data
  and by rarfile with ``NeedFirstVolume``; the probe uses the latter to map
  every continuation volume in the list onto a first volume in the list.
* Split files: in extract mode the unrar header of a file's first part carries
  the CRC32 of that part only; the whole file's CRC32 is in its last part,
  which ``RAR_OM_LIST_INCSPLIT`` reports. :meth:`UnrarProvider.entries` takes
  the last part's, and :meth:`UnrarProvider.stream` emits those entries.
* Symlinks: unrar sets ``RedirType`` for RAR 5 redirection records and for
  RAR 3 Unix symlinks (host Unix, ``S_IFLNK`` mode). Devices and FIFOs are
  plain headers with their mode in ``FileAttr``; they are classified here.
* Checksums: RAR 5 archives made with BLAKE2 have ``HashType`` 2 and no CRC32
  (``FileCRC`` is then garbage), so ``crc32`` is ``None``; unrar still checks
  BLAKE2 while unpacking and reports a mismatch as bad data.
* Encryption: file encryption shows as ``RHDF_ENCRYPTED`` and a password
  prompt (refused) when unpacking; header encryption shows as
  ``ROADF_ENCHEADERS`` and a prompt on the first header. rarfile's
  ``needs_password()`` sees both without a password.
* Truncation: cut exactly between two headers, an archive reads cleanly in
  both libraries, just shorter. So the probe requires the end-of-archive block
  that RAR 3 and RAR 5 write in every volume; RAR 2.x archives and archives
  made with ``rar -en`` lack it and are refused as probably truncated.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import rarfile

from lanspread_core.archive.protocol import Entry, EntryKind, EntrySink, ProbeResult
from lanspread_core.archive.provider import ArchiveProvider
from lanspread_core.errors import ArchiveError
from lanspread_unrar import _unrar
from lanspread_unrar._unrar import Archive, Header, UnrarError

RAR3_SIGNATURE = b"Rar!\x1a\x07\x00"
RAR5_SIGNATURE = b"Rar!\x1a\x07\x01\x00"
ENCRYPTED = "is password-protected; Lanspread cannot install encrypted archives"
_NEXT_VOLUME_ERROR = "Cannot open next volume: "


@dataclass(frozen=True)
class ArchiveSet:
    """One RAR archive: its first volume and every volume it spans, in order."""

    first: Path
    volumes: tuple[Path, ...]
    format: str
    solid: bool
    multi_volume: bool


@dataclass(frozen=True)
class _Continuation:
    path: Path
    format: str
    number: int | None  # 1 for the second volume, as rarfile counts; None if unknown


class _Refused(Exception):
    def __init__(self, reason: str, *, fmt: str | None = None, encrypted: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.format = fmt
        self.encrypted = encrypted


@dataclass
class _Plan:
    sets: list[ArchiveSet] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    formats: list[str] = field(default_factory=list)
    encrypted: bool = False

    def add_format(self, fmt: str) -> None:
        if fmt not in self.formats:
            self.formats.append(fmt)


def _signature(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            head = fh.read(len(RAR5_SIGNATURE))
    except OSError as exc:
        raise _Refused(f"{path.name} cannot be read: {exc.strerror}") from exc
    if head.startswith(RAR5_SIGNATURE):
        return "rar5"
    if head.startswith(RAR3_SIGNATURE):
        return "rar3"
    raise _Refused(f"{path.name} is not a RAR archive")


def _inspect(path: Path) -> ArchiveSet | _Continuation:
    """Read the headers of ``path`` and every volume it leads to; raise :class:`_Refused`."""
    fmt = _signature(path)
    ends: set[int] = set()
    main_flags: dict[int, int] = {}

    def seen(h: rarfile.RarInfo) -> None:
        if h.type == rarfile.RAR_BLOCK_ENDARC:
            ends.add(h.volume)
        elif h.type == rarfile.RAR_BLOCK_MAIN:
            main_flags.setdefault(h.volume, h.flags)

    try:
        rf = rarfile.RarFile(str(path), info_callback=seen)
    except rarfile.NeedFirstVolume as exc:
        return _Continuation(path, fmt, exc.current_volume)
    except (rarfile.Error, OSError) as exc:
        raise _Refused(f"{path.name} is damaged or unreadable: {exc}", fmt=fmt) from exc
    volumes = tuple(Path(v) for v in rf.volumelist())
    if rf.needs_password():
        raise _Refused(f"{path.name} {ENCRYPTED}", fmt=fmt, encrypted=True)
    error = rf.strerror()
    if error:
        if error.startswith(_NEXT_VOLUME_ERROR):
            missing = Path(error[len(_NEXT_VOLUME_ERROR) :]).name
            raise _Refused(
                f"{path.name} is the first volume of a set whose volume {missing} is missing",
                fmt=fmt,
            )
        raise _Refused(f"{path.name} is damaged or truncated ({error})", fmt=fmt)
    for number, volume in enumerate(volumes):
        if number not in ends:
            raise _Refused(
                f"{volume.name} ends without its end-of-archive marker; it is probably truncated",
                fmt=fmt,
            )
    multi = len(volumes) > 1 or bool(main_flags.get(0, 0) & rarfile.RAR_MAIN_VOLUME)
    return ArchiveSet(path, volumes, fmt, rf.is_solid(), multi)


def _key(path: Path) -> str:
    return os.path.normcase(str(path.resolve()))


def plan_sets(archives: Sequence[Path]) -> _Plan:
    """Group ``archives`` into sets; every problem becomes one reason."""
    plan = _Plan()
    continuations: list[_Continuation] = []
    if not archives:
        plan.reasons.append("there are no archives to read")
        return plan
    for path in archives:
        try:
            found = _inspect(Path(path))
        except _Refused as refused:
            plan.reasons.append(refused.reason)
            plan.encrypted = plan.encrypted or refused.encrypted
            if refused.format:
                plan.add_format(refused.format)
            continue
        plan.add_format(found.format)
        if isinstance(found, _Continuation):
            continuations.append(found)
        else:
            plan.sets.append(found)
    claimed = {_key(v) for s in plan.sets for v in s.volumes}
    for cont in continuations:
        if _key(cont.path) not in claimed:
            which = "a later volume" if cont.number is None else f"volume {cont.number + 1}"
            plan.reasons.append(
                f"{cont.path.name} is {which} of a multi-volume set whose first volume"
                " is not among the archives"
            )
    return plan


def _archive_error(s: ArchiveSet, exc: UnrarError) -> ArchiveError:
    """One sentence that names the archive, for an unrar result code."""
    name, code, what = s.first.name, exc.code, exc.what
    if code in (_unrar.ERAR_MISSING_PASSWORD, _unrar.ERAR_BAD_PASSWORD):
        msg = f"{name} {ENCRYPTED}"
    elif code == _unrar.ERAR_EOPEN:
        if exc.missing_volume:
            msg = f"{name} needs volume {Path(exc.missing_volume).name}, which is missing"
        else:
            msg = f"{name} or one of its volumes cannot be opened"
    elif code == _unrar.ERAR_BAD_DATA:
        msg = f"{name} is damaged or truncated: unrar found bad data while {what}"
    elif code == _unrar.ERAR_BAD_ARCHIVE:
        msg = f"{name} is not a valid RAR archive"
    elif code == _unrar.ERAR_UNKNOWN_FORMAT:
        msg = f"{name} uses a RAR format this unrar library does not know"
    elif code == _unrar.ERAR_EREAD:
        msg = f"{name} could not be read while {what}; it may be truncated"
    elif code == _unrar.ERAR_NO_MEMORY:
        msg = f"unrar ran out of memory while {what} in {name}"
    elif code == _unrar.ERAR_LARGE_DICT:
        msg = f"{name} needs a larger dictionary than unrar allows; it was not unpacked"
    elif code == _unrar.ERAR_EREFERENCE:
        msg = f"{name} has a file that refers to another file that cannot be read"
    else:
        msg = f"unrar failed with error {code} while {what} in {name}"
    return ArchiveError(msg)


def _entry(h: Header) -> Entry:
    if h.is_symlink:
        kind = EntryKind.SYMLINK
    elif h.is_hardlink:
        kind = EntryKind.HARDLINK
    elif h.is_device:
        kind = EntryKind.DEVICE
    elif h.is_dir:
        kind = EntryKind.DIR
    else:
        kind = EntryKind.FILE
    has_crc = kind is EntryKind.FILE and h.hash_type == _unrar.HASH_CRC32
    # A file split over volumes gets its whole-file CRC32 from its last part.
    complete = not h.flags & _unrar.RHDF_SPLITAFTER
    return Entry(
        path=_entry_path(h.name),
        kind=kind,
        size=h.size if kind is EntryKind.FILE else 0,
        crc32=h.crc32 if has_crc and complete else None,
    )


def _entry_path(name: str) -> str:
    # unrar gives native separators; on POSIX a backslash is kept as stored,
    # and the core's path check treats it as a separator.
    return name.replace(os.sep, "/") if os.sep != "/" else name


class UnrarProvider(ArchiveProvider):
    """Archive provider backed by the official unrar library."""

    def probe(self, archives: Sequence[Path]) -> ProbeResult:
        plan = plan_sets(archives)
        return ProbeResult(
            ok=not plan.reasons,
            format=", ".join(plan.formats) or "unknown",
            solid=any(s.solid for s in plan.sets),
            multi_volume=any(s.multi_volume for s in plan.sets),
            encrypted=plan.encrypted,
            reason="; ".join(plan.reasons),
            volumes=tuple(str(v) for s in plan.sets for v in s.volumes),
        )

    def sets(self, archives: Sequence[Path]) -> list[ArchiveSet]:
        """The archive sets of ``archives``, or :class:`ArchiveError` with the probe's reason."""
        plan = plan_sets(archives)
        if plan.reasons:
            raise ArchiveError("; ".join(plan.reasons))
        return plan.sets

    def entries(self, archives: Sequence[Path]) -> list[Entry]:
        return [e for s in self.sets(archives) for e in self._list(s)]

    def stream(self, archives: Sequence[Path], sink: EntrySink) -> None:
        listed = [(s, self._list(s)) for s in self.sets(archives)]
        for s, entries in listed:
            self._stream_set(s, entries, sink)

    def _list(self, s: ArchiveSet) -> list[Entry]:
        entries: list[Entry] = []
        try:
            with Archive(s.first, _unrar.OM_LIST_INCSPLIT) as arc:
                for h in arc.headers():
                    if h.flags & _unrar.RHDF_SPLITBEFORE:
                        if not entries or entries[-1].path != _entry_path(h.name):
                            raise ArchiveError(
                                f"{s.first.name} is damaged: a later part of {h.name!r}"
                                " does not follow its first part"
                            )
                        if not h.flags & _unrar.RHDF_SPLITAFTER:
                            entries[-1] = replace(entries[-1], crc32=_entry(h).crc32)
                    else:
                        entries.append(_entry(h))
                    arc.skip(h)
        except UnrarError as exc:
            raise _archive_error(s, exc) from exc
        return entries

    def _stream_set(self, s: ArchiveSet, entries: list[Entry], sink: EntrySink) -> None:
        expected = iter(entries)
        try:
            with Archive(s.first, _unrar.OM_EXTRACT) as arc:
                for h in arc.headers():
                    entry = next(expected, None)
                    if entry is None or entry.path != _entry_path(h.name):
                        raise ArchiveError(
                            f"{s.first.name} changed while it was read:"
                            f" {h.name!r} is not where its listing had it"
                        )
                    sink.begin(entry)
                    if entry.kind is EntryKind.DIR:
                        arc.skip(h)
                    else:
                        arc.test(h, sink.write)
                    sink.end(entry)
        except UnrarError as exc:
            raise _archive_error(s, exc) from exc
        missing = next(expected, None)
        if missing is not None:
            raise ArchiveError(
                f"{s.first.name} ended before {missing.path!r}; it is probably truncated"
            )
