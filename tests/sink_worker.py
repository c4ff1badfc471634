"""A delivery process for crash tests.

Usage: `python tests/sink_worker.py JOURNAL_DIR API URL TARGET BATCH [PAUSE_S]`.

Delivers the journal to one database until SIGTERM (graceful stop, exit 0).
The tests SIGKILL it mid-delivery and start it again. PAUSE_S (default 0)
delays each batch before it is sent, so that a test polling the cursor can
kill it mid-delivery however briefly the test was descheduled (a fast
database takes the whole journal in a fraction of a second).
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wattd.config import InfluxConfig
from wattd.sinks import make_sink
from wattd.sinks.delivery import Delivery


async def main(journal_dir: str, api: str, url: str, target: str, batch_size: int,
               pause_s: float) -> None:
    cfg = InfluxConfig(url=url, api=api, database=target, bucket=target,  # type: ignore[arg-type]
                       batch_size=batch_size, flush_interval_s=0.05)
    sink = make_sink(cfg)
    if pause_s > 0:
        send = sink.write

        async def paused_write(lines: Any) -> None:
            await asyncio.sleep(pause_s)
            await send(lines)

        sink.write = paused_write  # type: ignore[method-assign]
        post = getattr(sink, "write_blocking", None)
        if post is not None:
            # The delivery's normal path posts from a worker thread: hold it there too.
            def paused_post(lines: Any) -> None:
                time.sleep(pause_s)
                post(lines)

            sink.write_blocking = paused_post  # type: ignore[attr-defined]
    delivery = Delivery(sink, journal_dir, name="crashtest", batch_size=batch_size,
                        flush_interval_s=0.05, poll_interval_s=0.05)
    delivery.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await delivery.stop(5.0)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]),
                     float(sys.argv[6]) if len(sys.argv) > 6 else 0.0))
