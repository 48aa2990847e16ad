"""A resolved UDP destination: the one socket-level piece the VMC and Live Link Face senders share."""
from __future__ import annotations

import socket
from collections.abc import Iterable

from motion.errors import ChatAnyoneError


def resolve_udp(host: str, port: int, what: str) -> tuple[str, int]:
    """``(numeric address, port)`` for a UDP destination, resolved once.

    Raises:
        ChatAnyoneError: bad port, or a host name that does not resolve.
    """
    if not isinstance(port, int) or not 0 < port < 65536:
        raise ChatAnyoneError(f"{what}: port must be 1..65535, got {port!r}")
    try:
        info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError) as e:
        raise ChatAnyoneError(f"{what}: cannot resolve host {host!r} ({e})") from None
    return info[0][4][0], port


class UdpDestination:
    """A UDP socket aimed at ``host:port`` (IPv4 or IPv6), resolved once.

    Args:
        what: the protocol's name in error messages (``"VMC"``, ``"Live Link"``).
    Raises:
        ChatAnyoneError: bad port, unresolvable host, or no UDP socket.
    """

    def __init__(self, host: str, port: int, what: str):
        self.host, self.port, self.what = host, port, what
        self.addr = resolve_udp(host, port, what)
        try:
            self._sock = socket.socket(socket.AF_INET6 if ":" in self.addr[0] else socket.AF_INET,
                                       socket.SOCK_DGRAM)
        except OSError as e:
            raise ChatAnyoneError(f"{what}: cannot open a UDP socket ({e.strerror or e})") from None

    def sendto(self, datagrams: Iterable[bytes]) -> None:
        """Send datagrams as they are. Raises ``OSError`` from the socket (the pacer counts those)."""
        for d in datagrams:
            self._sock.sendto(d, self.addr)

    def send(self, datagrams: Iterable[bytes]) -> None:
        """:meth:`sendto`, with a network refusal as ``ChatAnyoneError``."""
        try:
            self.sendto(datagrams)
        except OSError as e:
            raise ChatAnyoneError(f"{self.what}: cannot send to {self.host}:{self.port} ({e.strerror or e})") from None

    def close(self) -> None:
        self._sock.close()
