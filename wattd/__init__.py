"""wattd: energy measurement daemon for software benchmarks.

Kept import-light: ``wattd mark`` and the Python marker API must start fast,
so nothing heavy is imported here; the marker API is loaded on first use.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "mark", "run"]


def __getattr__(name: str) -> Any:
    # Lazy: `wattd.run` / `wattd.mark` live in wattd.markers.api, which `import wattd`
    # must not pay for.
    if name in ("run", "mark"):
        from wattd.markers import api

        return getattr(api, name)
    raise AttributeError(f"module 'wattd' has no attribute {name!r}")
