"""Per-sink delivery cursors, written atomically (write, fsync, rename)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from wattd.journal.segments import Position

_NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,200}$")


class CursorStore:
    def __init__(self, journal_dir: str | os.PathLike[str]) -> None:
        self.dir = Path(journal_dir) / "cursors"

    def _path(self, name: str) -> Path:
        if not _NAME_RE.match(name):
            raise ValueError(f"bad cursor name {name!r}")
        return self.dir / f"{name}.json"

    def load(self, name: str) -> Position | None:
        try:
            data = json.loads(self._path(name).read_text(encoding="utf-8"))
            return Position(int(data["segment"]), int(data["offset"]))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            return None  # a corrupt cursor restarts from the oldest data: at least once

    def save(self, name: str, pos: Position) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self._path(name)
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"segment": pos.segment, "offset": pos.offset}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def names(self) -> list[str]:
        try:
            return sorted(p.stem for p in self.dir.glob("*.json"))
        except FileNotFoundError:
            return []

    def remove(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)

    def oldest(self) -> Position | None:
        """The least advanced cursor (what is undelivered starts there)."""
        positions = [p for p in (self.load(n) for n in self.names()) if p is not None]
        return min(positions) if positions else None
