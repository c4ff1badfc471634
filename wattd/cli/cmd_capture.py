"""wattd capture PORT -o FILE: record a meter's serial output, one JSON line per read.

The port is opened with the driver's serial settings (4800 8E1 for the HLW8032
family) in low-latency mode where possible; each line is
``{"t_ns": <CLOCK_REALTIME at the read>, "hex": "<bytes>"}``. Runs for
``--seconds`` or until Ctrl-C. Exit 1 if the port cannot be opened or
vanishes mid-capture (what was read is kept).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import signal
import sys
import time


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("port", metavar="PORT", help="serial port, e.g. /dev/ttyUSB0")
    parser.add_argument("-o", "--output", required=True, metavar="FILE", help="capture file")
    parser.add_argument("--driver", default="gb202", help="serial settings of this driver")
    parser.add_argument("--seconds", type=float, default=None, metavar="S",
                        help="stop after S seconds (default: until Ctrl-C)")
    parser.add_argument("--address", type=int, default=0, metavar="A",
                        help="polled chips (bl0942): chip address 0-3 to poll (default 0)")
    parser.add_argument("--poll-interval", type=float, default=0.25, metavar="S",
                        help="polled chips (bl0940, bl0942): seconds between polls")


def execute(args: argparse.Namespace) -> int:
    import serial

    from wattd.protocols.registry import get_driver
    from wattd.sources.capture_file import capture_line

    spec = get_driver(args.driver)
    s = spec.serial
    # A polled chip (BL0940/BL0942) says nothing unless asked: poll it like the daemon.
    poll = spec.make_decoder(address=args.address).poll_request() if spec.polled else None
    next_poll = time.monotonic()
    try:
        port = serial.Serial(args.port, baudrate=s.baudrate, bytesize=s.bytesize,
                             parity=s.parity, stopbits=s.stopbits, timeout=0)
    except (serial.SerialException, OSError, ValueError) as exc:
        print(f"wattd capture: cannot open {args.port}: {exc}", file=sys.stderr)
        return 1
    # ptys and some adapters have no low-latency flag
    with contextlib.suppress(OSError, ValueError, AttributeError, NotImplementedError):
        port.set_low_latency_mode(True)
    stop = False

    def on_term(_signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    old_term = signal.signal(signal.SIGTERM, on_term)
    fd = port.fileno()
    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    reads = total = 0
    status = 0
    try:
        with open(args.output, "w", encoding="utf-8") as out:
            while not stop:
                wait_s = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
                if wait_s <= 0:
                    break
                if poll:
                    now = time.monotonic()
                    if now >= next_poll:
                        with contextlib.suppress(BlockingIOError):
                            os.write(fd, poll)
                        next_poll = max(next_poll + args.poll_interval, now)
                    wait_s = max(0.0, min(wait_s, next_poll - now))
                if not select.select([fd], [], [], wait_s)[0]:
                    continue
                try:
                    data = os.read(fd, 4096)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    print(f"wattd capture: {args.port} lost: {exc}", file=sys.stderr)
                    status = 1
                    break
                t_ns = time.clock_gettime_ns(time.CLOCK_REALTIME)
                if not data:
                    print(f"wattd capture: {args.port} closed", file=sys.stderr)
                    status = 1
                    break
                out.write(capture_line(t_ns, data))
                out.flush()
                reads += 1
                total += len(data)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, old_term)
        port.close()
    print(f"wattd capture: {reads} reads, {total} bytes -> {args.output}", file=sys.stderr)
    return status
