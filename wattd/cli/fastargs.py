"""Command lines of the fast path (`wattd mark`, `wattd status`) parsed without argparse.

argparse (with gettext, shutil and re behind it) costs a `wattd mark` inside a
benchmark loop several milliseconds, more than the rest of its start-up. The
commands on that path declare their options here as well; a command line this
parser fully understands is parsed here, and anything else (``-h``, an unknown
or abbreviated option, a missing value, a bad number or verb) returns None, and
the command's argparse parser then parses it (and prints the usual help or
error). So both parsers accept the same command lines and give the same values
(tests/test_cli_fastargs.py checks them against each other).

Imports nothing.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

# kinds: "str" (one value), "float", "int", "append" (repeatable, a list), "flag" (no value)
Flag = tuple[str, str]  # (dest, kind)


class Options:
    """The parsed values, as attributes (what argparse's Namespace gives)."""

    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)

    def __getattr__(self, name: str) -> Any:  # only called for a missing attribute
        raise AttributeError(name)

    def __repr__(self) -> str:
        return f"Options({self.__dict__!r})"


def parse(argv: Sequence[str], *, positionals: Sequence[tuple[str, Sequence[str] | None]],
          flags: Mapping[str, Flag], defaults: Mapping[str, object]) -> Options | None:
    """``argv`` by ``positionals`` ((dest, allowed values or None), all required)
    and ``flags`` (``--name`` / ``-x`` -> (dest, kind); ``--name=value`` works for
    long options). None when argparse must decide (help, errors, anything odd)."""
    values: dict[str, object] = {k: (list(v) if isinstance(v, list) else v)
                                 for k, v in defaults.items()}
    given: list[str] = []
    i = 0
    n = len(argv)
    while i < n:
        arg = argv[i]
        i += 1
        if arg.startswith("-") and arg != "-":
            name, eq, inline = arg.partition("=")
            if eq and not name.startswith("--"):
                return None
            spec = flags.get(name)
            if spec is None:
                return None
            dest, kind = spec
            if kind == "flag":
                if eq:
                    return None
                values[dest] = True
                continue
            if eq:
                text = inline
            elif i < n and not argv[i].startswith("-"):
                text = argv[i]
                i += 1
            else:
                return None  # a missing value, or one argparse may read as an option
            try:
                if kind == "float":
                    values[dest] = float(text)
                elif kind == "int":
                    values[dest] = int(text)
                elif kind == "append":
                    current = values.get(dest)
                    values[dest] = [*current, text] if isinstance(current, list) else [text]
                else:
                    values[dest] = text
            except ValueError:
                return None
        else:
            given.append(arg)
    if len(given) != len(positionals):
        return None
    for (dest, allowed), text in zip(positionals, given, strict=True):
        if allowed is not None and text not in allowed:
            return None
        values[dest] = text
    return Options(**values)
