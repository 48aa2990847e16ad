"""Who may talk to our servers: loopback decided from resolved addresses, ``Host:`` checks, tokens.

One home for the access rules of ``chatanyone serve`` (HTTP) and the WebSocket stream
(:mod:`bridge.ws_server`):

* **Loopback is decided from addresses, never from the host string.** :func:`is_local` resolves a bind
  host with :func:`socket.getaddrinfo` and is true only when every address it resolves to is a loopback
  address (``127.0.0.0/8``, ``::1``; :attr:`ipaddress.IPv4Address.is_loopback`). A name such as
  ``127.attacker.example`` or ``127.0.0.1.nip.io`` is whatever DNS says it is; a name that does not resolve
  is not local. :func:`bound_is_local` checks the address a socket actually bound to.
* **Host header** (DNS rebinding, RFC 9110 §7.2): a server without a token answers only requests whose
  ``Host:`` names a loopback address literally (``127.0.0.1:8000``, ``[::1]:8000``) or is ``localhost``.
  A page on ``http://evil.example`` whose name is re-pointed at 127.0.0.1 sends ``Host: evil.example`` and
  is refused (HTTP 403). With a token the token protects the private routes and any ``Host:`` is accepted
  (the server cannot know every name of a LAN machine).
* **Tokens** are compared in constant time (:func:`hmac.compare_digest`).
"""
from __future__ import annotations

import hmac
import ipaddress
import socket

#: names that mean this machine's loopback interface without a DNS lookup (RFC 6761 §6.3)
LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost", "ip6-loopback"})


def _literal_is_loopback(host: str) -> bool | None:
    """True/False for an IP literal (``[::1]`` brackets allowed), None when ``host`` is not one."""
    h = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(h.split("%", 1)[0]).is_loopback
    except ValueError:
        return None


def is_local(host: str) -> bool:
    """True when binding to ``host`` listens on loopback addresses only.

    Args:
        host: a bind address or name (``"127.0.0.1"``, ``"::1"``, ``"localhost"``, ``"0.0.0.0"``, ...).
    Returns:
        True when ``host`` is a loopback IP literal, or a name all of whose resolved addresses
        (:func:`socket.getaddrinfo`) are loopback addresses; False otherwise, including for ``""``,
        ``0.0.0.0`` / ``::`` (every interface) and names that do not resolve.
    """
    if not host:
        return False
    literal = _literal_is_loopback(host)
    if literal is not None:
        return literal
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return False
    addrs = {info[4][0] for info in infos}
    return bool(addrs) and all(_literal_is_loopback(a) for a in addrs)


def bound_is_local(sockname: tuple) -> bool:
    """True when a bound socket's address (``sock.getsockname()``) is a loopback address."""
    return bool(_literal_is_loopback(str(sockname[0])))


def host_header_allowed(host_header: str | None) -> bool:
    """True when a request's ``Host:`` value names this machine's loopback interface.

    Args:
        host_header: the header's value (``"127.0.0.1:8000"``, ``"localhost"``, ``"[::1]:8765"``), or None
            when the request had none (HTTP/1.0; browsers always send it, so this is allowed).
    Returns:
        True for ``localhost`` (any port), a loopback IP literal (any port), or a missing header.
    """
    if host_header is None:
        return True
    value = host_header.strip().lower()
    if value.startswith("["):                      # [v6]:port
        end = value.find("]")
        name = value[:end + 1] if end > 0 else value
    else:
        name = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
    if name in LOOPBACK_NAMES:
        return True
    return bool(_literal_is_loopback(name))


def token_matches(offered: str | None, token: str | None) -> bool:
    """True when no token is required, or ``offered`` equals ``token`` (constant-time comparison)."""
    if token is None:
        return True
    return hmac.compare_digest((offered or "").encode(), token.encode())
