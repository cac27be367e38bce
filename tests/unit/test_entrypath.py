from pathlib import PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lanspread_core.archive.entrypath import safe_relpath
from lanspread_core.errors import UnsafeEntryError


@pytest.mark.parametrize(
    "name",
    ["", "/etc/passwd", "\\windows\\x", "C:/x", "c:x", "a/../../b", "..", "a/..", "x\x00y", "./."],
)
def test_refused(name: str) -> None:
    with pytest.raises(UnsafeEntryError):
        safe_relpath(name)


@pytest.mark.parametrize(
    ("name", "want"),
    [("a/b.txt", "a/b.txt"), ("a\\b", "a/b"), ("./a//b/", "a/b"), ("sub/with space/x", None)],
)
def test_accepted(name: str, want: str | None) -> None:
    assert safe_relpath(name) == PurePosixPath(want or name)


@given(st.text())
def test_never_escapes(name: str) -> None:
    try:
        rel = safe_relpath(name)
    except UnsafeEntryError:
        return
    assert not rel.is_absolute()
    assert ".." not in rel.parts
    assert rel.parts and all(p not in ("", ".") for p in rel.parts)
