"""SIGHUP: re-read the configuration, apply what can change live, name the rest.

The running configuration is only ever replaced piece by piece: a file that
does not load (bad YAML, unknown key, missing secret) leaves everything as it
was, with an error naming file, line and key. Of a good file, each changed key
is either applied live (the ``log`` section: format and level) or logged as
needing a restart (and left at its running value, so ``status`` never claims
a setting the daemon is not using).

Changed keys are dotted paths: ``log.level``, ``markers.rate.per_s``,
``meters.<name>.tags``, ``meters.+<name>`` / ``meters.-<name>`` for an added
or removed meter, ``influxdb.<i>.url``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from wattd.config import Config, load_config
from wattd.daemon.notify import Notifier
from wattd.errors import WattdError
from wattd.logsetup import get_logger, setup_logging

log = get_logger(__name__)

# The keys applied without a restart: the whole log section.
LIVE_PREFIX = "log."


def _fields(obj: Any) -> Iterator[tuple[str, Any]]:
    for f in dataclasses.fields(obj):
        if f.name != "path":
            yield f.name, getattr(obj, f.name)


def diff_configs(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted paths of every leaf that differs between two configs (or sub-configs)."""
    changes: list[str] = []
    if dataclasses.is_dataclass(old) and dataclasses.is_dataclass(new) and type(old) is type(new):
        for name, old_value in _fields(old):
            changes += diff_configs(old_value, getattr(new, name), f"{prefix}{name}.")
        return changes
    path = prefix.rstrip(".")
    if path == "meters" and isinstance(old, list) and isinstance(new, list):
        old_by = {m.name: m for m in old}
        new_by = {m.name: m for m in new}
        changes += [f"meters.-{n}" for n in old_by if n not in new_by]
        changes += [f"meters.+{n}" for n in new_by if n not in old_by]
        if [n for n in old_by if n in new_by] != [n for n in new_by if n in old_by]:
            changes.append("meters.order")
        for name in old_by.keys() & new_by.keys():
            changes += diff_configs(old_by[name], new_by[name], f"meters.{name}.")
        return sorted(changes)
    if isinstance(old, list) and isinstance(new, list) and old and \
            all(dataclasses.is_dataclass(x) for x in old + new):
        if len(old) != len(new):
            return [path]
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            changes += diff_configs(a, b, f"{prefix}{i}.")
        return changes
    return [] if old == new else [path]


def _resolve(cfg: Config, path: str) -> tuple[Any, str]:
    """The object holding the leaf at ``path`` and the attribute name."""
    parts = path.split(".")
    obj: Any = cfg
    for part in parts[:-1]:
        if isinstance(obj, list):
            obj = obj[int(part)] if part.isdigit() else next(m for m in obj if m.name == part)
        else:
            obj = getattr(obj, part)
    return obj, parts[-1]


def copy_leaf(running: Config, new: Config, path: str) -> None:
    """Copy one changed leaf from ``new`` into the running config, in place.

    In place matters: components hold references to their config objects
    (a meter source to its ``MeterConfig``) and read the fields as they go.
    """
    dst, attr = _resolve(running, path)
    src, _ = _resolve(new, path)
    if isinstance(dst, list):
        dst[int(attr)] = src[int(attr)]
    else:
        setattr(dst, attr, getattr(src, attr))


@dataclass(slots=True)
class ReloadResult:
    ok: bool
    applied: list[str] = field(default_factory=list)
    needs_restart: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    error: str | None = None


class Reloader:
    """Re-reads the config file on request; one reload at a time."""

    def __init__(self, running: Config, path: str | None, notifier: Notifier,
                 load: Callable[[str | None], Config] = load_config) -> None:
        self.running = running
        self.path = path
        self.notifier = notifier
        self._load = load
        self._lock = asyncio.Lock()
        self.reloads = 0
        self.failures = 0
        self.last: ReloadResult | None = None
        self.status_text: Callable[[], str] = lambda: ""

    @staticmethod
    def plan(changes: list[str]) -> tuple[list[str], list[str]]:
        """Split changed paths into (live, needs_restart)."""
        live = [c for c in changes if c.startswith(LIVE_PREFIX)]
        return live, [c for c in changes if c not in live]

    async def reload(self) -> ReloadResult:
        async with self._lock:
            return self._reload()

    def _reload(self) -> ReloadResult:
        self.reloads += 1
        self.notifier.reloading("reloading configuration")
        log.info("config_reload", file=self.path or self.running.path)
        try:
            new = self._load(self.path)
        except (WattdError, OSError, ValueError) as exc:
            self.failures += 1
            result = ReloadResult(ok=False, error=str(exc))
            log.error("config_reload_failed", error=str(exc),
                      effect="keeping the running configuration")
            self.last = result
            self.notifier.ready(f"config reload failed, running config kept: {exc}")
            return result
        changes = diff_configs(self.running, new)
        live, restart = self.plan(changes)
        result = ReloadResult(ok=True, needs_restart=restart)
        for path in live:
            copy_leaf(self.running, new, path)
        if live:
            try:
                setup_logging(self.running.log.format, self.running.log.level)
            except Exception:  # a logging set-up that fails must not end the daemon
                result.failed += live
                log.exception("config_apply_failed", keys=live)
            else:
                result.applied += live
        if restart:
            log.warning("config_change_needs_restart", keys=restart,
                        hint="systemctl restart wattd to apply them; the running values stay")
        log.info("config_reloaded", applied=result.applied, needs_restart=restart,
                 unchanged=not changes)
        self.last = result
        summary = self.status_text()
        self.notifier.ready(summary or None)
        return result

    def status(self) -> dict[str, Any]:
        last = self.last
        return {"reloads": self.reloads, "failures": self.failures,
                "last_error": None if last is None else last.error,
                "pending_restart": [] if last is None else last.needs_restart}
