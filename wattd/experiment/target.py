"""Where markers go and with which secret (SPEC 9.1): ``--to`` /
``--secret-file`` first, then the config given with ``-c`` (its first
``markers.listen`` and ``markers.secret_file``), then ``$WATTD_MARKER``, then
127.0.0.1:9288. The config (and yaml with it) is read only when given."""

from __future__ import annotations

from typing import NamedTuple

from wattd.errors import UsageError

# A daemon listening on a wildcard address is reached on the loopback one.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}  # noqa: S104 - mapped, not bound


class Target(NamedTuple):
    to: str | None  # None: the client's default ($WATTD_MARKER, then 127.0.0.1:9288)
    secret: bytes | None


def resolve(to: str | None, secret_file: str | None, config: str | None) -> Target:
    """Raise UsageError (exit 2) for an unreadable secret file; ConfigError
    (exit 2, naming file, line and key) for a bad config."""
    secret: bytes | None = None
    if secret_file:
        from wattd.markers.wire import read_secret

        try:
            secret = read_secret(secret_file)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--secret-file: {exc}") from None
    if config and (to is None or secret is None):
        from wattd.config import load_config, parse_listen

        cfg = load_config(config)
        if to is None and cfg.markers.listen:
            host, port = parse_listen(cfg.markers.listen[0])
            host = _WILDCARDS.get(host, host)
            to = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if secret is None:
            secret = cfg.markers.secret
    return Target(to, secret)
