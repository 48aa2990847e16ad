"""A resolved UDP destination: the one socket-level piece the VMC and Live Link Face senders share."""
from __future__ import annotations

import errno
import logging
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

    The socket is ``connect()``-ed to the destination so that the OS reports an ICMP "port unreachable"
    (nothing listening there) as ``ECONNREFUSED`` on a later send; an unconnected socket never hears of it
    and a stream to a closed port would be silent. Receivers may start late, so a refusal does not stop
    sending: the datagram is sent again at once, the refusals are counted in :attr:`refused`, and the first
    one is raised (once) as :class:`ConnectionRefusedError` "nothing is listening on HOST:PORT", which the
    pacer logs as its one warning for that output.

    Args:
        what: the protocol's name in error messages (``"VMC"``, ``"Live Link"``).
    Raises:
        ChatAnyoneError: bad port, unresolvable host, or no UDP socket.
    """

    def __init__(self, host: str, port: int, what: str):
        self.host, self.port, self.what = host, port, what
        self.addr = resolve_udp(host, port, what)
        #: datagrams the OS refused (nothing listening at the destination)
        self.refused = 0
        try:
            self._sock = socket.socket(socket.AF_INET6 if ":" in self.addr[0] else socket.AF_INET,
                                       socket.SOCK_DGRAM)
        except OSError as e:
            raise ChatAnyoneError(f"{what}: cannot open a UDP socket ({e.strerror or e})") from None
        try:
            self._sock.connect(self.addr)
            self._connected = True
        except OSError:                      # e.g. no route yet: send unconnected, the pacer counts errors
            self._connected = False

    def _send_one(self, d: bytes) -> None:
        if self._connected:
            self._sock.send(d)
        else:
            self._sock.sendto(d, self.addr)

    def sendto(self, datagrams: Iterable[bytes]) -> None:
        """Send datagrams as they are. Raises ``OSError`` from the socket (the pacer counts those), and
        :class:`ConnectionRefusedError` once, on the first refusal (see the class docstring)."""
        first = False
        for d in datagrams:
            try:
                self._send_one(d)
            except ConnectionRefusedError:   # a refusal reported for an earlier datagram: this one is unsent
                self.refused += 1
                first = first or self.refused == 1
                try:
                    self._send_one(d)
                except ConnectionRefusedError:
                    self.refused += 1
        if first:
            raise ConnectionRefusedError(errno.ECONNREFUSED,
                                         f"nothing is listening on {self.host}:{self.port} (connection refused)")

    def send(self, datagrams: Iterable[bytes]) -> None:
        """:meth:`sendto`, with a network failure as ``ChatAnyoneError``; a refusal (nothing listening)
        is logged once as a warning (``logging``, logger ``bridge``) and does not raise."""
        try:
            self.sendto(datagrams)
        except ConnectionRefusedError as e:
            logging.getLogger("bridge").warning("%s: %s", self.what, e.strerror)
        except OSError as e:
            raise ChatAnyoneError(f"{self.what}: cannot send to {self.host}:{self.port} ({e.strerror or e})") from None

    def close(self) -> None:
        self._sock.close()
