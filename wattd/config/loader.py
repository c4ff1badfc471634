"""YAML -> typed dataclasses, with errors that name the file, the line and the key.

Generic: it knows nothing of wattd's sections. ``load_dataclass(cls, text, file)``
builds ``cls`` from a YAML document, converting and checking every value against
the field's type hint; unknown keys are refused with a "did you mean" hint and
missing required keys are named. ``DocumentBuilder.error`` makes the same kind
of located error for the checks the schema does afterwards.

Field metadata understood here:
- ``NOT_A_KEY``: the field is set by the program, never read from YAML;
- ``ONE_OR_MANY``: a list field that may also be written as its one item.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

import yaml

from wattd.errors import ConfigError, did_you_mean

NOT_A_KEY: Mapping[str, bool] = types.MappingProxyType({"not_a_key": True})
ONE_OR_MANY: Mapping[str, bool] = types.MappingProxyType({"one_or_many": True})

KeyPath = tuple[str | int, ...]
T = TypeVar("T")

_SCALARS = yaml.SafeLoader("")  # resolves scalar nodes (ints, floats, bools, null) the safe way


def _is_key(f: dataclasses.Field[Any]) -> bool:
    return not f.metadata.get("not_a_key", False)


class _Located:
    """YAML values plus the line of every mapping key and sequence item."""

    def __init__(self) -> None:
        self.lines: dict[KeyPath, int] = {}

    def convert(self, node: yaml.Node, path: KeyPath) -> Any:
        self.lines.setdefault(path, node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
                sub = (*path, str(key))
                self.lines[sub] = key_node.start_mark.line + 1
                out[str(key)] = self.convert(value_node, sub)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.convert(item, (*path, i)) for i, item in enumerate(node.value)]
        return _SCALARS.construct_object(node)


class DocumentBuilder:
    """Builds typed values from one parsed document; knows the line of every key."""

    def __init__(self, file: str, lines: dict[KeyPath, int]) -> None:
        self.file = file
        self.lines = lines

    def error(self, path: KeyPath, message: str) -> ConfigError:
        """A ConfigError at ``path`` (the nearest line known for it or a parent)."""
        line = None
        probe = path
        while probe and line is None:
            line = self.lines.get(probe)
            probe = probe[:-1]
        key = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path).replace(".[", "[")
        return ConfigError(message, file=self.file, line=line, key=key or None)

    def build(self, tp: Any, value: Any, path: KeyPath) -> Any:
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (typing.Union, types.UnionType):
            if value is None and type(None) in args:
                return None
            non_none = [a for a in args if a is not type(None)]
            last: ConfigError | None = None
            for arg in non_none:
                try:
                    return self.build(arg, value, path)
                except ConfigError as exc:
                    last = exc
            assert last is not None
            raise last
        if origin is Literal:
            if value not in args:
                raise self.error(path, f"must be one of {', '.join(map(str, args))}, "
                                       f"not {value!r}")
            return value
        if dataclasses.is_dataclass(tp):
            return self.build_dataclass(tp, value, path)
        if origin is list:
            if isinstance(value, str | int | float) and args[0] is str:
                value = [value]
            if not isinstance(value, list):
                raise self.error(path, f"must be a list, not {type(value).__name__}")
            return [self.build(args[0], item, (*path, i)) for i, item in enumerate(value)]
        if origin is dict:
            if not isinstance(value, dict):
                raise self.error(path, f"must be a mapping, not {type(value).__name__}")
            return {str(k): self.build(args[1], v, (*path, str(k))) for k, v in value.items()}
        if origin is tuple:
            if not isinstance(value, list) or len(value) != len(args):
                raise self.error(path, f"must be a list of {len(args)} numbers, e.g. [80, 300]")
            return tuple(self.build(a, v, (*path, i)) for i, (a, v) in
                         enumerate(zip(args, value, strict=True)))
        return self._build_scalar(tp, value, path)

    def _build_scalar(self, tp: Any, value: Any, path: KeyPath) -> Any:
        if tp is bool:
            if not isinstance(value, bool):
                raise self.error(path, f"must be true or false, not {value!r}")
            return value
        if tp is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise self.error(path, f"must be an integer, not {value!r}")
            return value
        if tp is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise self.error(path, f"must be a number, not {value!r}")
            return float(value)
        if tp is str:
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                raise self.error(path, f"must be a string, not {value!r}")
            return str(value)
        raise self.error(path, f"unsupported type {tp!r}")  # pragma: no cover

    def build_dataclass(self, cls: Any, value: Any, path: KeyPath) -> Any:
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise self.error(path, f"must be a mapping, not {type(value).__name__}")
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls) if _is_key(f)}
        known = list(fields)
        kwargs: dict[str, Any] = {}
        for key, given in value.items():
            if key not in fields:
                hint = did_you_mean(key, known)
                suffix = f" (did you mean '{hint}'?)" if hint else \
                    f" (known keys: {', '.join(known)})"
                raise self.error((*path, key), f"unknown key{suffix}")
            sub = (*path, key)
            one_item = fields[key].metadata.get("one_or_many") and not isinstance(given, list)
            if one_item:
                self._relocate(sub)
            kwargs[key] = self.build(hints[key], [given] if one_item else given, sub)
        for f in fields.values():
            no_default = (f.default is dataclasses.MISSING
                          and f.default_factory is dataclasses.MISSING)
            if no_default and f.name not in kwargs:
                raise self.error((*path, f.name), "is required")
        return cls(**kwargs)

    def _relocate(self, path: KeyPath) -> None:
        """The value at ``path`` became item 0 of a list: so did the lines below it."""
        depth = len(path)
        self.lines.update({(*path, 0, *k[depth:]): line for k, line in list(self.lines.items())
                           if k[:depth] == path and len(k) > depth})


def parse_document(text: str, file: str, *, empty: str = "empty document",
                   ) -> tuple[dict[str, Any], DocumentBuilder]:
    """The top-level mapping of a YAML document and a builder that locates its keys;
    ``empty`` is the message for a document with nothing in it."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = mark.line + 1 if mark is not None else None
        raise ConfigError(f"invalid YAML: {exc.problem}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=file) from None
    if node is None:
        raise ConfigError(empty, file=file)
    located = _Located()
    data = located.convert(node, ())
    builder = DocumentBuilder(file, located.lines)
    if not isinstance(data, dict):
        raise builder.error((), "the top level must be a mapping of sections")
    return data, builder


def load_dataclass(cls: type[T], text: str, file: str, *, empty: str = "empty document",
                   ) -> tuple[T, DocumentBuilder]:
    """``cls`` built from the YAML ``text``, and the builder (for located checks)."""
    data, builder = parse_document(text, file, empty=empty)
    built: T = builder.build_dataclass(cls, data, ())
    return built, builder
