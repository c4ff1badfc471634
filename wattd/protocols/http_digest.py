"""HTTP digest access authentication (RFC 7616), client side, pure.

Shelly Gen2+ devices protect their RPC with digest auth (SHA-256, ``qop=auth``,
user ``admin``); MD5 is accepted too for other servers. The caller supplies
the client nonce, so the result is deterministic and testable.
"""

from __future__ import annotations

import hashlib
import re

_PARAM = re.compile(r'(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]+))')
_HASHES = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}


def parse_challenge(header: str) -> dict[str, str] | None:
    """The parameters of a ``WWW-Authenticate: Digest ...`` header, or None."""
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "digest":
        return None
    params = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
              for m in _PARAM.finditer(rest)}
    if "realm" not in params or "nonce" not in params:
        return None
    return params


def _h(algorithm: str, text: str) -> str:
    return _HASHES[algorithm](text.encode("utf-8")).hexdigest()


def supported(challenge: dict[str, str]) -> bool:
    return challenge.get("algorithm", "MD5").upper() in _HASHES


def authorization(challenge: dict[str, str], *, method: str, uri: str, username: str,
                  password: str, cnonce: str, nc: int) -> str:
    """The ``Authorization`` header answering ``challenge`` (qop ``auth`` or none)."""
    algorithm = challenge.get("algorithm", "MD5").upper()
    realm, nonce = challenge["realm"], challenge["nonce"]
    ha1 = _h(algorithm, f"{username}:{realm}:{password}")
    ha2 = _h(algorithm, f"{method}:{uri}")
    qops = [q.strip() for q in challenge.get("qop", "").split(",") if q.strip()]
    nc_text = f"{nc:08x}"
    parts = [f'username="{username}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"',
             f"algorithm={algorithm}"]
    if "auth" in qops:
        response = _h(algorithm, f"{ha1}:{nonce}:{nc_text}:{cnonce}:auth:{ha2}")
        parts += ["qop=auth", f"nc={nc_text}", f'cnonce="{cnonce}"']
    else:
        response = _h(algorithm, f"{ha1}:{nonce}:{ha2}")
    parts.append(f'response="{response}"')
    if "opaque" in challenge:
        parts.append(f'opaque="{challenge["opaque"]}"')
    return "Digest " + ", ".join(parts)


def check(header: str, *, method: str, username: str, password: str, realm: str,
          nonce: str, algorithm: str = "SHA-256") -> bool:
    """Server side (the simulator): does ``header`` answer our challenge?"""
    params = parse_challenge(header)
    if params is None or params.get("username") != username or params.get("nonce") != nonce:
        return False
    uri = params.get("uri", "")
    ha1 = _h(algorithm, f"{username}:{realm}:{password}")
    ha2 = _h(algorithm, f"{method}:{uri}")
    if params.get("qop") == "auth":
        want = _h(algorithm, f"{ha1}:{nonce}:{params.get('nc', '')}:{params.get('cnonce', '')}"
                  f":auth:{ha2}")
    else:
        want = _h(algorithm, f"{ha1}:{nonce}:{ha2}")
    return params.get("response") == want
