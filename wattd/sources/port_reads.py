"""How a meter port is read: the read size and the reason a failed read gives for
the reconnect (shared by the event-loop readers and the port reader thread)."""

from __future__ import annotations

import errno
import os

READ_BYTES = 4096
# A read failing with one of these means the device is gone (unplugged, hung up).
GONE_ERRNOS = {errno.EIO, errno.ENXIO, errno.ENODEV, errno.EBADF}


def gone_reason(exc: OSError) -> str:
    """The reconnect reason for a read that failed."""
    if exc.errno in GONE_ERRNOS:
        return f"read: {os.strerror(exc.errno or 0)}"
    return f"read: {exc}"
