"""A delivery process for crash tests.

Usage: `python tests/sink_worker.py JOURNAL_DIR API URL TARGET BATCH`.

Delivers the journal to one database until SIGTERM (graceful stop, exit 0).
The tests SIGKILL it mid-delivery and start it again.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from wattd.config import InfluxConfig
from wattd.sinks import make_sink
from wattd.sinks.delivery import Delivery


async def main(journal_dir: str, api: str, url: str, target: str, batch_size: int) -> None:
    cfg = InfluxConfig(url=url, api=api, database=target, bucket=target,  # type: ignore[arg-type]
                       batch_size=batch_size, flush_interval_s=0.05)
    delivery = Delivery(make_sink(cfg), journal_dir, name="crashtest", batch_size=batch_size,
                        flush_interval_s=0.05, poll_interval_s=0.05)
    delivery.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await delivery.stop(5.0)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])))
