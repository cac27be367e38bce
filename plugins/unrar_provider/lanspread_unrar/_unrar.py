"""A thin, strict binding to the official unrar library that ``unrar2-cffi`` ships.

Why not ``unrar.cffi.unrarlib.RarArchive`` as it is: measured against unrar2-cffi
0.5.0 (unrar 7.x inside),

* ``RarArchive.iterate_headers()`` stops on *any* non-zero result of
  ``RARReadHeaderEx``, so a damaged or truncated archive (``ERAR_BAD_DATA``)
  or a missing volume (``ERAR_EOPEN``) looks like a clean end of archive;
* ``RarHeader.test()`` always returns 1 from the C callback, so a consumer
  cannot abort a file (unrar aborts only when the callback returns -1), and an
  exception raised inside the callback is printed by cffi and swallowed;
* it installs no callback while reading headers, so a missing volume or a
  password prompt cannot be answered, and it does not expose the archive flags.

So this module drives the same C functions (``RAROpenArchiveEx``,
``RARReadHeaderEx``, ``RARProcessFileW``, ``RARSetCallbackPtr``) itself. It
still imports ``unrar.cffi.unrarlib``: that module attaches the Python side of
the ``PyUNRARCALLBACKStub`` trampoline, which dispatches to the object passed
as user data. Every callback here catches everything: an exception cannot
cross the C frames, so it is kept, -1 tells unrar to stop, and the caller
re-raises it once the C call has returned.
"""

from __future__ import annotations

import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from unrar.cffi import unrarlib as _trampoline  # noqa: F401  (attaches the callback stub)
from unrar.cffi._unrarlib import ffi, lib

# Result codes (dll.hpp).
ERAR_SUCCESS = 0
ERAR_END_ARCHIVE = 10
ERAR_NO_MEMORY = 11
ERAR_BAD_DATA = 12
ERAR_BAD_ARCHIVE = 13
ERAR_UNKNOWN_FORMAT = 14
ERAR_EOPEN = 15
ERAR_EREAD = 18
ERAR_MISSING_PASSWORD = 22
ERAR_EREFERENCE = 23
ERAR_BAD_PASSWORD = 24
ERAR_LARGE_DICT = 25

# Open modes and operations.
OM_LIST_INCSPLIT: int = lib.C_RAR_OM_LIST_INCSPLIT
OM_EXTRACT: int = lib.C_RAR_OM_EXTRACT
_RAR_SKIP: int = lib.C_RAR_SKIP
_RAR_TEST: int = lib.C_RAR_TEST

# RAROpenArchiveDataEx.Flags.
ROADF_VOLUME = 0x0001
ROADF_SOLID = 0x0008
ROADF_ENCHEADERS = 0x0080
ROADF_FIRSTVOLUME = 0x0100

# RARHeaderDataEx.Flags.
RHDF_SPLITBEFORE = 0x01
RHDF_SPLITAFTER = 0x02
RHDF_ENCRYPTED = 0x04
RHDF_DIRECTORY = 0x20

# RARHeaderDataEx.RedirType.
REDIR_NONE = 0
REDIR_UNIX_SYMLINK = 1
REDIR_WIN_SYMLINK = 2
REDIR_JUNCTION = 3
REDIR_HARDLINK = 4
REDIR_FILECOPY = 5

# RARHeaderDataEx.HashType and HostOS (the DLL maps RAR5 hosts onto these).
HASH_CRC32 = 1
HOST_MSDOS = 0
HOST_WIN32 = 2
HOST_UNIX = 3
_WIN_REPARSE_POINT = 0x400

# Callback messages and UCM_CHANGEVOLUME's second argument.
_UCM_CHANGEVOLUME: int = lib.UCM_CHANGEVOLUME
_UCM_PROCESSDATA: int = lib.UCM_PROCESSDATA
_UCM_NEEDPASSWORD: int = lib.UCM_NEEDPASSWORD
_UCM_CHANGEVOLUMEW: int = lib.UCM_CHANGEVOLUMEW
_UCM_NEEDPASSWORDW: int = lib.UCM_NEEDPASSWORDW
_UCM_LARGEDICT: int = lib.UCM_LARGEDICT
_RAR_VOL_ASK = 0

_NAME_CHARS = 32 * 1024  # long names: unrar fills FileNameEx when FileNameW (1024) is too short


def _utf16_units(name: str) -> str:
    """Join the surrogate pairs of a name unrar gave as UTF-16 units.

    RAR 3 stores a Unicode name as UTF-16, and unrar copies its units one to a
    ``wchar_t`` even where that is 32 bits wide (Linux): a character beyond
    the Basic Multilingual Plane (a mathematical letter, an emoji) arrives as
    two surrogates, which no file system API or UTF-8 output accepts. A lone
    surrogate (a damaged name) becomes U+FFFD, as rarfile reads it.
    """
    if not any("\ud800" <= ch <= "\udfff" for ch in name):
        return name
    return name.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


class UnrarError(Exception):
    """A result code from the unrar library, with what the callback saw."""

    def __init__(self, code: int, what: str, missing_volume: str | None = None) -> None:
        super().__init__(f"unrar error {code} while {what}")
        self.code = code
        self.what = what
        self.missing_volume = missing_volume


@dataclass(frozen=True)
class Header:
    """The fields of one ``RARHeaderDataEx`` that Lanspread uses."""

    name: str
    flags: int
    size: int
    crc32: int
    hash_type: int
    host_os: int
    attr: int
    redir_type: int

    @property
    def is_dir(self) -> bool:
        return bool(self.flags & RHDF_DIRECTORY)

    @property
    def is_symlink(self) -> bool:
        if self.redir_type in (REDIR_UNIX_SYMLINK, REDIR_WIN_SYMLINK, REDIR_JUNCTION):
            return True
        if self.redir_type != REDIR_NONE:
            return False  # a redirection record says what it is, whatever the mode bits
        if self.host_os == HOST_UNIX and stat.S_ISLNK(self.attr):
            return True
        return self.host_os in (HOST_MSDOS, HOST_WIN32) and bool(self.attr & _WIN_REPARSE_POINT)

    @property
    def is_hardlink(self) -> bool:
        # A RAR5 "file copy" also refers to another entry's data; neither can be
        # produced from this entry's own bytes, so both count as hard links.
        return self.redir_type in (REDIR_HARDLINK, REDIR_FILECOPY)

    @property
    def is_device(self) -> bool:
        if self.host_os != HOST_UNIX or self.is_dir:
            return False
        fmt = stat.S_IFMT(self.attr)
        return fmt not in (0, stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK)


class Archive:
    """One open archive set (first volume) in the unrar library.

    Use as a context manager; the handle is closed on exit. Volumes are
    followed by unrar's own naming rule; when it asks for a volume that does
    not exist, the read fails with :data:`ERAR_EOPEN` and the name it wanted is
    in :attr:`UnrarError.missing_volume`.
    """

    def __init__(self, path: Path, mode: int) -> None:
        self.path = path
        self._name_w = ffi.new("wchar_t[]", str(path))
        data = ffi.new(
            "struct RAROpenArchiveDataEx *", {"ArcNameW": self._name_w, "OpenMode": mode}
        )
        handle = lib.RAROpenArchiveEx(data)
        if data.OpenResult != ERAR_SUCCESS or handle == ffi.NULL:
            raise UnrarError(int(data.OpenResult), "opening the archive")
        self._handle: Any = handle
        self.flags = int(data.Flags)
        self._on_data: Callable[[bytes], None] | None = None
        self._pending: BaseException | None = None
        self._missing_volume: str | None = None
        self._wants_password = False
        self._header: Any = None
        self._name_ex = ffi.new("wchar_t[]", _NAME_CHARS)
        # Keep the handle object alive as long as the C side may call it.
        self._user_data = ffi.new_handle(self._callback)
        lib.RARSetCallbackPtr(self._handle, lib.PyUNRARCALLBACKStub, self._user_data)

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._handle is not None:
            lib.RARCloseArchive(self._handle)
            self._handle = None

    def _callback(self, msg: int, p1: int, p2: int) -> int:
        """Called from C: never raises, returns -1 to make unrar stop."""
        try:
            if msg == _UCM_PROCESSDATA:
                if self._on_data is not None:
                    self._on_data(ffi.buffer(ffi.cast("char *", p1), p2)[:])
                return 1
            if msg in (_UCM_CHANGEVOLUMEW, _UCM_CHANGEVOLUME):
                if p2 == _RAR_VOL_ASK:
                    if msg == _UCM_CHANGEVOLUMEW:
                        self._missing_volume = _utf16_units(ffi.string(ffi.cast("wchar_t *", p1)))
                    return -1
                return 1
            if msg in (_UCM_NEEDPASSWORDW, _UCM_NEEDPASSWORD):
                self._wants_password = True
                return -1
            # UCM_LARGEDICT and anything newer: refuse rather than guess.
            return -1
        except BaseException as exc:  # must not cross the C frames: kept, re-raised later
            self._pending = exc
            return -1

    def _raise_pending(self) -> None:
        if self._pending is not None:
            exc, self._pending = self._pending, None
            raise exc

    def _fail(self, code: int, what: str) -> UnrarError:
        if self._wants_password and code not in (ERAR_MISSING_PASSWORD, ERAR_BAD_PASSWORD):
            code = ERAR_MISSING_PASSWORD
        return UnrarError(code, what, self._missing_volume)

    def headers(self) -> Iterator[Header]:
        """Each header in archive order; the caller must :meth:`skip` or :meth:`test` it."""
        while True:
            raw = ffi.new("struct RARHeaderDataEx *")
            self._name_ex[0] = "\0"  # the buffer is reused: never show a stale name
            raw.FileNameEx = self._name_ex
            raw.FileNameExSize = _NAME_CHARS
            result = lib.RARReadHeaderEx(self._handle, raw)
            self._raise_pending()
            if result == ERAR_END_ARCHIVE:
                return
            if result != ERAR_SUCCESS:
                raise self._fail(int(result), "reading a header")
            name = ffi.string(raw.FileNameEx) or ffi.string(raw.FileNameW)
            yield Header(
                name=_utf16_units(name),
                flags=int(raw.Flags),
                size=int(raw.UnpSize) | (int(raw.UnpSizeHigh) << 32),
                crc32=int(raw.FileCRC),
                hash_type=int(raw.HashType),
                host_os=int(raw.HostOS),
                attr=int(raw.FileAttr),
                redir_type=int(raw.RedirType),
            )

    def skip(self, header: Header) -> None:
        result = lib.RARProcessFileW(self._handle, _RAR_SKIP, ffi.NULL, ffi.NULL)
        self._raise_pending()
        if result != ERAR_SUCCESS:
            raise self._fail(int(result), f"skipping {header.name!r}")

    def test(self, header: Header, on_data: Callable[[bytes], None]) -> None:
        """Unpack the current file in memory, passing each chunk to ``on_data`` as it comes.

        unrar checks the file's CRC32 or BLAKE2 itself. An exception from
        ``on_data`` stops unrar at once and is re-raised here.
        """
        self._on_data = on_data
        try:
            result = lib.RARProcessFileW(self._handle, _RAR_TEST, ffi.NULL, ffi.NULL)
        finally:
            self._on_data = None
        self._raise_pending()
        if result != ERAR_SUCCESS:
            raise self._fail(int(result), f"unpacking {header.name!r}")
