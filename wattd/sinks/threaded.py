"""What both database sinks share: one worker thread per sink for blocking HTTP,
one keep-alive connection, one way to POST a batch and read the answer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from wattd.config import InfluxConfig
from wattd.logsetup import get_logger
from wattd.sinks.base import classify_http, encode_body
from wattd.sinks.http_post import HttpPoster

log = get_logger("wattd.sinks")


def make_poster(cfg: InfluxConfig) -> HttpPoster:
    """The sink's connection, honouring `verify_tls`, `ca_file` and `timeout_s`."""
    if cfg.url.startswith("https:") and not cfg.verify_tls:
        # The user chose this (a self-signed box on the LAN): say it once in the log,
        # not once per request.
        log.warning("tls_verification_disabled", url=cfg.url)
    return HttpPoster(cfg.url, timeout_s=cfg.timeout_s, verify_tls=cfg.verify_tls,
                      ca_file=cfg.ca_file)


class ThreadedSink:
    """A sink whose ``_post`` blocks: ``write`` runs it in the sink's own thread,
    ``write_blocking`` in the caller's (the delivery loop's worker job)."""

    def __init__(self, cfg: InfluxConfig) -> None:
        self._cfg = cfg
        self._name = cfg.sink_name
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sink-{self._name}")
        self._poster = make_poster(cfg)

    @property
    def name(self) -> str:
        return self._name

    @property
    def url(self) -> str:
        return self._cfg.url

    def _post(self, lines: Sequence[bytes]) -> None:
        raise NotImplementedError

    def _post_lines(self, path: str, lines: Sequence[bytes], headers: dict[str, str]) -> None:
        """POST `lines` (gzipped when configured) to `path`; raise the SinkError
        the answer means, if any."""
        body = encode_body(lines, use_gzip=self._cfg.gzip)
        headers = {"Content-Type": "text/plain; charset=utf-8", **headers}
        if self._cfg.gzip:
            headers["Content-Encoding"] = "gzip"
        status, data, resp_headers = self._poster.post(path, body, headers)
        error = classify_http(status, data, resp_headers, what=self._cfg.url)
        if error is not None:
            raise error

    def write_blocking(self, lines: Sequence[bytes]) -> None:
        """`write` in the calling thread: the delivery loop sends, saves its cursor
        and reads the next batch in one worker job (one event-loop hop per batch)."""
        if lines:
            self._post(lines)

    async def write(self, lines: Sequence[bytes]) -> None:
        if not lines:
            return
        await asyncio.get_running_loop().run_in_executor(self._executor, self._post, lines)

    async def close(self) -> None:
        # A request still running in the thread finishes (bounded by timeout_s); its
        # batch was not acknowledged to the delivery loop, so it stays in the journal.
        self._executor.submit(self._poster.close)
        self._executor.shutdown(wait=False)
