"""Reading a secret: the file's content with surrounding whitespace stripped."""

from __future__ import annotations

from pathlib import Path

import pytest

from wattd.secretfile import read_secret


def test_surrounding_whitespace_is_stripped_inner_kept(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    path.write_bytes(b" \t hunter 2\xc3\xa9\r\n\n")
    assert read_secret(path) == "hunter 2\u00e9".encode()
    assert read_secret(str(path)) == "hunter 2\u00e9".encode()


def test_empty_file_is_refused_unless_allowed(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b" \n")
    with pytest.raises(ValueError, match="is empty"):
        read_secret(path)
    assert read_secret(path, allow_empty=True) == b""


def test_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_secret(tmp_path / "nope")
