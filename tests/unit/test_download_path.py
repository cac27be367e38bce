"""One rule for "a path a download may contain": the manifest parser, the
files a downloader writes and the serving side all refuse the same paths
with the same sentence, because they all ask :func:`download_path`."""

from __future__ import annotations

import copy
from pathlib import Path, PurePosixPath

import pytest

from lanspread_core.dataplane.files import DownloadFiles
from lanspread_core.library.layout import UnsafeDownloadPath, download_path
from lanspread_core.library.manifest import FileEntry, Manifest, ManifestError

BAD = {
    "dot dot": "../secret.txt",
    "inner dot dot": "sub/../../x",
    "absolute": "/etc/passwd",
    "backslash absolute": "\\windows\\x",
    "drive letter": "C:/x",
    "not canonical": "sub//x",
    "trailing slash": "sub/x/",
    "empty": "",
    "nul": "a\x00b",
    "surrogate": "a\udcff.eti",
    "under local": "local/save.dat",
    "staging": ".local.installing/x",
    "backup": ".local.backup/x",
    "sentinel": "version.ini",
    "sentinel temp": ".version.ini.tmp",
}
GOOD = ["a.eti", "sub/deep/file.bin", "version.ini.bak", "locals/x", "sub/version.ini"]


@pytest.mark.parametrize("path", GOOD)
def test_ordinary_paths_pass_unchanged(path: str) -> None:
    assert download_path(path) == PurePosixPath(path)
    assert download_path(path).as_posix() == path


@pytest.mark.parametrize("path", BAD.values(), ids=BAD.keys())
def test_every_reader_refuses_with_the_rules_sentence(path: str, tmp_path: Path) -> None:
    with pytest.raises(UnsafeDownloadPath) as rule:
        download_path(path)
    sentence = str(rule.value)
    assert sentence and "\n" not in sentence

    good = Manifest.create([FileEntry("a.eti", 0, ())]).to_json()
    tampered = copy.deepcopy(good)
    tampered["files"] = [{"path": path, "size": 0, "chunks": []}]
    with pytest.raises(ManifestError) as parsed:
        Manifest.from_json(tampered)
    assert sentence in str(parsed.value)

    manifest = Manifest(4096, "blake3", (FileEntry(path, 0, ()),), "0" * 64)
    with pytest.raises(UnsafeDownloadPath) as written:
        DownloadFiles(tmp_path, manifest)
    assert str(written.value) == sentence
    assert list(tmp_path.iterdir()) == []
