"""One exception root; subclasses say whose fault it is."""

from __future__ import annotations

from collections.abc import Iterable


class WattdError(Exception):
    """Root of every error wattd raises on purpose."""


class ConfigError(WattdError):
    """The user's configuration is wrong. Names file, line and key."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None,
                 key: str | None = None) -> None:
        self.file = file
        self.line = line
        self.key = key
        where = []
        if file:
            where.append(file if line is None else f"{file}:{line}")
        if key:
            where.append(f"key '{key}'")
        prefix = ": ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)
        self.message = message


class InputError(WattdError):
    """Bad bytes from outside (a meter, a datagram, a journal line)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


class MarkerInputError(InputError):
    """A marker datagram is malformed or refused; `reason` is the reply code."""


class SinkError(WattdError):
    """A database sink is down or refused a write."""


class UsageError(WattdError):
    """Command-line misuse (exit status 2)."""


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """The closest of ``choices`` to a mistyped ``word``, for an error message (difflib
    is imported here, on the error path: a running daemon never needs it)."""
    import difflib

    close = difflib.get_close_matches(word, list(choices), n=1)
    return close[0] if close else None
