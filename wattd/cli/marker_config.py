"""Where a client finds the daemon of a config file (``-c FILE`` on mark and status).

Imported only when ``-c`` is given: loading a config pulls in yaml and the
whole config model, which the fast path otherwise never needs.
"""

from __future__ import annotations

from wattd.config import load_config, parse_listen
from wattd.errors import ConfigError

# A daemon listening on every address is reached on loopback.
_WILDCARD_TO_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104 - a mapping, no bind


def marker_target(path: str) -> tuple[str, bytes | None]:
    """(``HOST:PORT`` of the daemon's markers, its shared secret or None): the
    multicast group when the config has one, else its first ``listen``; the secret
    from ``markers.secret_file``. Raises ConfigError for a bad or unusable file."""
    markers = load_config(path).markers
    group = getattr(markers, "multicast", None)  # SPEC 10: markers.multicast.group
    group_text = getattr(group, "group", None) if group is not None else None
    if isinstance(group_text, str) and group_text:
        return group_text, markers.secret
    if not markers.listen:
        raise ConfigError("no marker address to send to", file=path, key="markers.listen")
    host, port = parse_listen(markers.listen[0])
    if port == 0:
        raise ConfigError("port 0 (chosen by the system) cannot be sent to", file=path,
                          key="markers.listen")
    host = _WILDCARD_TO_LOOPBACK.get(host, host)
    return (f"[{host}]:{port}" if ":" in host else f"{host}:{port}"), markers.secret
