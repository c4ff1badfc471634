"""Reading a secret from a file (marker HMAC key, database token or password).

SPEC 2: the secret is the file's content with surrounding whitespace stripped,
as bytes. Import-light: ``wattd mark`` reads its secret with it.
"""

from __future__ import annotations

import os


def read_secret(path: str | os.PathLike[str], *, allow_empty: bool = False) -> bytes:
    """The content of ``path`` without surrounding whitespace. OSError when the file
    cannot be read; ValueError when nothing is left, unless ``allow_empty``."""
    with open(path, "rb") as fh:
        secret = fh.read().strip()
    if not secret and not allow_empty:
        raise ValueError(f"secret file {os.fspath(path)} is empty")
    return secret
