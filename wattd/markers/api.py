"""Python API for benchmark harnesses (import-light, same wire format as the CLI).

    import wattd

    with wattd.run("rust-500k", lang="rust", requests=500000) as r:
        r.phase("warmup")
        ...
        r.phase("load")
        ...
    print(r.energy_j, r.duration_s, r.mean_w)

    wattd.mark("event", "rust-500k", note="gc pause")

If the block raises, the run is aborted (``abort NAME``) and the exception
propagates. Refusals raise :class:`MarkerRefusedError`, silence :class:`NoReplyError`.
"""

from __future__ import annotations

import contextlib
from types import TracebackType

from wattd.markers.client import (
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT_S,
    MarkerClient,
    MarkerRefusedError,
    NoReplyError,
)
from wattd.markers.wire import Reply
from wattd.secretfile import read_secret

__all__ = ["MarkerRefusedError", "NoReplyError", "Run", "mark", "run"]


def _client(to: str | None, secret_file: str | None, timeout_s: float,
            retries: int) -> MarkerClient:
    secret = read_secret(secret_file) if secret_file else None
    return MarkerClient(to, secret=secret, timeout_s=timeout_s, retries=retries)


def mark(verb: str, name: str | None = None, *, to: str | None = None,
         meter: str | None = None, phase: str | None = None, secret_file: str | None = None,
         timeout_s: float = DEFAULT_TIMEOUT_S, retries: int = DEFAULT_RETRIES,
         **tags: object) -> Reply:
    """Send one marker and return the daemon's ok reply (raise on refusal)."""
    with _client(to, secret_file, timeout_s, retries) as client:
        reply = client.send(verb, name, tags=tags, phase=phase, meter=meter)
    if not reply.ok:
        raise MarkerRefusedError(reply)
    return reply


class Run:
    """A run as a context manager; after a normal exit holds the stop result."""

    def __init__(self, name: str, *, to: str | None = None, meter: str | None = None,
                 secret_file: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
                 retries: int = DEFAULT_RETRIES, tags: dict[str, object] | None = None) -> None:
        self.name = name
        self.meter = meter
        self.tags = dict(tags or {})
        self._client = _client(to, secret_file, timeout_s, retries)
        self.reply: Reply | None = None
        self.result: dict[str, float] = {}

    def _send(self, verb: str, *, phase: str | None = None,
              tags: dict[str, object] | None = None) -> Reply:
        reply = self._client.send(verb, self.name, tags=tags, phase=phase, meter=self.meter)
        if not reply.ok:
            raise MarkerRefusedError(reply)
        return reply

    def phase(self, phase: str) -> Reply:
        """Open a phase (closing the current one)."""
        return self._send("start", phase=phase)

    def event(self, **tags: object) -> Reply:
        return self._send("event", tags=tags)

    def __enter__(self) -> Run:
        try:
            self._send("start", tags=self.tags)
        except BaseException:
            self._client.close()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        try:
            if exc_type is not None:
                # The block's own exception matters more than a lost abort.
                with contextlib.suppress(Exception):
                    self._client.send("abort", self.name, meter=self.meter)
                return
            self.reply = self._send("stop")
            result: dict[str, float] = {}
            for key, value in self.reply.fields.items():
                try:
                    result[key] = float(value)
                except ValueError:
                    continue
            self.result = result
        finally:
            self._client.close()

    @property
    def energy_j(self) -> float | None:
        return self.result.get("energy_j")

    @property
    def duration_s(self) -> float | None:
        return self.result.get("duration_s")

    @property
    def mean_w(self) -> float | None:
        return self.result.get("mean_w")

    @property
    def no_readings(self) -> list[str]:
        """Meters the run has no energy for (no reading measured them); with
        any, ``energy_j`` and ``mean_w`` are None."""
        return [] if self.reply is None else self.reply.no_readings


def run(name: str, *, to: str | None = None, meter: str | None = None,
        secret_file: str | None = None, timeout_s: float = DEFAULT_TIMEOUT_S,
        retries: int = DEFAULT_RETRIES, **tags: object) -> Run:
    """``with wattd.run(NAME, tag=value, ...) as r:`` starts, stops (or aborts) a run."""
    return Run(name, to=to, meter=meter, secret_file=secret_file, timeout_s=timeout_s,
               retries=retries, tags=tags)
