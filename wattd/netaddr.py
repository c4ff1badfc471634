"""Host and port from text, the one parser for every address wattd reads: marker
listen addresses, the marker client's target, SNTP servers; and the parts of an
``http(s)://`` URL that the database sinks and the smart-plug meters connect to.

Accepted: ``HOST``, ``HOST:PORT``, ``[V6]:PORT``, ``[V6]`` and a bare IPv6
address. Pure and import-light (the marker client uses it).
"""

from __future__ import annotations


class HttpTarget:
    """Where an ``http(s)://host[:port][/base]`` URL points (``base_path`` without
    a trailing slash). A plain class: this module stays on the marker client's
    import-light path."""

    __slots__ = ("base_path", "host", "https", "port")

    def __init__(self, https: bool, host: str, port: int | None, base_path: str) -> None:
        self.https = https
        self.host = host
        self.port = port
        self.base_path = base_path

    @classmethod
    def from_url(cls, url: str) -> HttpTarget:
        """ValueError names the URL when it is not http(s) or has no host."""
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        return cls(parts.scheme == "https", parts.hostname, parts.port,
                   parts.path.rstrip("/"))


def split_host_port(text: str, default_port: int, *,
                    allow_port_zero: bool = False) -> tuple[str, int]:
    """``(host, port)``; ``default_port`` where the text has none. Port 0 (bind
    to any free port) only with ``allow_port_zero``. ValueError names the text."""
    text = text.strip()
    if text.startswith("["):
        host, closed, rest = text[1:].partition("]")
        if not closed:
            raise ValueError(f"bad address {text!r}: missing ']'")
        if rest and not rest.startswith(":"):
            raise ValueError(f"bad address {text!r}")
        has_port, port_text = bool(rest), rest[1:]
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        has_port = True
    else:  # a host name, an IPv4 address or a bare IPv6 address
        host, has_port, port_text = text, False, ""
    if not host:
        raise ValueError(f"bad address {text!r}: no host")
    if not has_port:
        return host, default_port
    lowest = 0 if allow_port_zero else 1
    if not port_text.isdigit() or not lowest <= int(port_text) <= 65535:
        raise ValueError(f"bad port in {text!r}")
    return host, int(port_text)


def parse_listen(text: str, default_port: int = 9288) -> tuple[str, int]:
    """A listen address: '127.0.0.1:9288', '[::]:9288', '0.0.0.0', '[::1]' -> (host,
    port). The host must be an IP address (or ``localhost``); port 0 binds any."""
    import ipaddress  # not on the marker client's path, which needs only the split

    host, port = split_host_port(text, default_port, allow_port_zero=True)
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host != "localhost":
            raise ValueError(f"bad address {text.strip()!r}: host must be an IP address"
                             ) from None
    return host, port


def resolver_host(host: str) -> bytes | str:
    """``host`` as getaddrinfo should get it: ASCII as bytes (a str host makes
    getaddrinfo load the idna codec, and unicodedata with it: milliseconds of a
    `wattd mark`, half a megabyte of the daemon), anything else as it is."""
    return host.encode() if host.isascii() else host
