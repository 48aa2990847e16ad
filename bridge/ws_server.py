"""WebSocket server that broadcasts the motion stream (``bridge.protocol``) to any number of clients.

:class:`FrameBroadcaster` is the reusable piece (``chatanyone stream --ws`` and ``chatanyone serve`` both
use it). It runs its own asyncio event loop (``websockets`` library) in a background thread, so the
real-time pacer calls :meth:`~FrameBroadcaster.publish` from its own thread without ever waiting on a
client::

    ws = FrameBroadcaster(port=8765)             # localhost only
    ws.start()                                   # binds; ChatAnyoneError if the port is taken
    ws.publish(frame)                            # thread-safe, never blocks
    ws.publish_end(n)                            # the optional "end" message
    print(ws.stats.summary())
    ws.stop()                                    # closes every connection (code 1001), joins the thread

Behaviour:

* **Messages** (DESIGN.md "Wire formats", :mod:`bridge.protocol`): each client first gets the ``header``
  (the stream's fps, names, parents, conventions), then every ``frame`` published after it connected, and
  ``end`` messages when published. Binary msgpack messages only; no compression (float payloads do not
  compress and per-client deflate would cost CPU per client).
* **Slow clients**: each client has a bounded queue of ``queue_size`` messages. When it is full the
  *oldest* queued frame is dropped (a live avatar wants the newest pose), counted in
  :attr:`ClientStats.dropped`. A stalled client therefore costs a bounded amount of memory and never delays
  the pacer or the other clients. Each connection's kernel send buffer is capped (``send_buffer``, 64 KiB,
  ~2 s of frames) so that a slow client's backlog sits in that bounded queue, where old frames are dropped,
  rather than in megabytes of auto-tuned TCP buffer that would deliver it minutes-old frames.
* **Security** (:mod:`bridge.access`): binds to ``127.0.0.1`` by default. Any host that does not resolve
  to loopback addresses only is a deliberate opt-in and requires a ``token``; clients present it as
  ``?token=...`` in the URL or an ``Authorization: Bearer ...`` header (HTTP 401 otherwise; compared in
  constant time). Without a token, a handshake whose ``Host:`` is not a loopback name or address is refused
  with HTTP 403 (DNS rebinding), and the bound address is checked to be loopback after binding.
  ``max_clients`` bounds the connections (HTTP 503).
* **Client messages**: only ``audio`` (PCM16 16 kHz mono) and ``audio_end`` are accepted, and only when
  the server was given ``on_audio`` (``--ws-audio``); one client at a time may send audio. Messages over
  ``max_message`` bytes close the connection with code 1009 (the library's check); text, malformed or
  unexpected messages close it with code 1003/1008 and a reason. Either way the server keeps running and
  the event is logged on one line. A client that disconnects in the middle of its audio ends the utterance
  (``on_audio_end`` is called; or ``on_audio_abort``, an attribute, when set: the receiver drops the audio it
  still holds) with a logged message. An ``on_audio`` that returns a reason (a string) refuses the audio: the
  connection is closed with code 1013 (try again later), e.g. a client far ahead of real time.
* ``process_request`` (optional): ``(path, headers) -> (status, content_type, body) | None``, called for
  plain HTTP requests (no WebSocket upgrade) after the token check, so a viewer page can be served from
  the same port.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Callable
from urllib.parse import parse_qs, urlsplit

import numpy as np
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from motion.conventions import MODEL_FPS
from motion.errors import ChatAnyoneError
from motion.frames import MotionFrame

from . import protocol
from .access import bound_is_local, host_header_allowed, is_local, token_matches  # noqa: F401 (is_local: API)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
DEFAULT_QUEUE = 32                      # ~1 s of frames at 30 fps
DEFAULT_MAX_CLIENTS = 256
DEFAULT_SEND_BUFFER = 64 * 1024         # kernel send buffer per client (bytes): ~2 s of frames
KEEP_CLOSED_STATS = 1000                # statistics of this many disconnected clients are kept


@dataclass
class ClientStats:
    """One client's counters. ``sent``/``dropped`` count messages (header included in ``sent``)."""

    id: int
    address: str
    sent: int = 0
    dropped: int = 0
    connected: bool = True
    close_reason: str = ""


@dataclass
class BroadcastStats:
    """Server counters: the clients (connected, and the last :data:`KEEP_CLOSED_STATS` disconnected ones),
    messages published, refusals."""

    clients: list[ClientStats] = field(default_factory=list)
    published: int = 0
    rejected: int = 0                   # handshakes refused (bad token, too many clients)
    protocol_errors: int = 0            # connections closed for a bad client message

    def summary(self) -> str:
        n = len(self.clients)
        dropped = sum(c.dropped for c in self.clients)
        slow = sum(1 for c in self.clients if c.dropped)
        return (f"ws: {self.published} messages published, {n} clients, {dropped} frames dropped "
                f"({slow} slow clients), {self.rejected} refused, {self.protocol_errors} protocol errors")


class _Client:
    def __init__(self, conn: ServerConnection, stats: ClientStats, queue_size: int):
        self.conn = conn
        self.stats = stats
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=queue_size)


def _stderr_log(msg: str) -> None:
    print(f"chatanyone: {msg}", file=sys.stderr, flush=True)


class FrameBroadcaster:
    """Broadcast the WebSocket stream (see the module docstring).

    Args:
        host: bind address (default ``127.0.0.1``); a non-local host needs ``token``.
        port: TCP port (default 8765; ``0`` picks a free one, see :attr:`port` after :meth:`start`).
        token: shared secret clients must present (``?token=`` or ``Authorization: Bearer``).
        fps: the frame rate announced in the header; also this output's rate for the pacer
            (``None``: the source's 30 fps).
        queue_size: per-client queue bound, in messages.
        max_message: largest client message in bytes (default :data:`bridge.protocol.MAX_CLIENT_MESSAGE`).
        max_clients: connections beyond this are refused with HTTP 503.
        send_buffer: ``SO_SNDBUF`` of each client connection in bytes (``None``: the system's auto-tuning).
        on_audio: ``callback(samples float32 [N] 16 kHz)`` for ``audio`` messages (enables ``--ws-audio``);
            called in the server thread, keep it short (e.g. put into a queue).
        on_audio_end: ``callback()`` at ``audio_end`` or when the audio client vanishes.
        process_request: see the module docstring.
        log: one-line event logger (default: stderr with a ``chatanyone:`` prefix).
        name: the output's name in pacer statistics.
    Raises:
        ChatAnyoneError: a non-local host without a token, or bad sizes.
    """

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, token: str | None = None,
                 fps: float | None = None, queue_size: int = DEFAULT_QUEUE,
                 max_message: int = protocol.MAX_CLIENT_MESSAGE, max_clients: int = DEFAULT_MAX_CLIENTS,
                 send_buffer: int | None = DEFAULT_SEND_BUFFER,
                 on_audio: Callable[[np.ndarray], None] | None = None,
                 on_audio_end: Callable[[], None] | None = None,
                 process_request: Callable[[str, Headers], tuple[int, str, bytes] | None] | None = None,
                 log: Callable[[str], None] = _stderr_log, name: str = "ws"):
        if not is_local(host) and not token:
            raise ChatAnyoneError(f"refusing to serve the WebSocket stream on non-local host {host!r} "
                                  "without a token: pass --token SECRET (clients add ?token=SECRET)")
        if queue_size < 1 or max_message < 64 or max_clients < 1:
            raise ChatAnyoneError("queue_size, max_clients must be >= 1 and max_message >= 64 bytes")
        if not isinstance(port, int) or not 0 <= port < 65536:
            raise ChatAnyoneError(f"WebSocket port must be 0..65535, got {port!r}")
        self.host, self.port, self.token = host, port, token
        self.name = name
        self.fps = fps
        self.queue_size, self.max_message, self.max_clients = queue_size, max_message, max_clients
        self.send_buffer = send_buffer
        self.on_audio, self.on_audio_end = on_audio, on_audio_end
        self.process_request = process_request
        self.log = log
        self._header = protocol.encode_header(fps if fps else MODEL_FPS)
        self._clients: set[_Client] = set()
        self._ids = itertools.count(1)
        self._audio_owner: _Client | None = None
        self.stats = BroadcastStats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server = None
        self._stopped = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> "FrameBroadcaster":
        """Bind and start serving in a background thread; returns ``self``.

        Raises:
            ChatAnyoneError: the port is in use, the address cannot be bound, or the host is unknown.
        """
        ready = threading.Event()
        error: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(self._serve(ready))
            except BaseException as e:  # bind errors surface in start()
                error.append(e)
                ready.set()
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="chatanyone-ws", daemon=True)
        self._thread.start()
        ready.wait()
        if error:
            e = error[0]
            if isinstance(e, OSError):
                what = "is already in use" if e.errno in (98, 48, 10048) else f"cannot be bound ({e.strerror or e})"
                raise ChatAnyoneError(f"WebSocket: port {self.port} on {self.host} {what}") from None
            raise e
        return self

    async def _serve(self, ready: threading.Event) -> None:
        quiet = logging.getLogger("chatanyone.ws")
        quiet.setLevel(logging.CRITICAL)
        self._stopped = asyncio.Event()
        async with serve(self._handler, self.host, self.port, process_request=self._process_request,
                         compression=None, max_size=self.max_message, max_queue=4,
                         ping_interval=20, ping_timeout=20, close_timeout=2, logger=quiet) as server:
            self._server = server
            self.port = server.sockets[0].getsockname()[1]
            if not self.token and not all(bound_is_local(s.getsockname()) for s in server.sockets):
                raise ChatAnyoneError(f"{self.host!r} bound a non-loopback address "
                                      f"({server.sockets[0].getsockname()[0]}): pass --token SECRET")
            ready.set()
            await self._stopped.wait()
            server.close(close_connections=True)
            await server.wait_closed()

    def stop(self, drain_s: float = 0.0) -> None:
        """Stop serving: optionally wait up to ``drain_s`` seconds for client queues to empty, then close
        every connection (code 1001) and join the server thread. Idempotent."""
        loop = self._loop
        if loop is None or self._thread is None or not self._thread.is_alive():
            return
        end = time.monotonic() + drain_s
        while drain_s > 0 and time.monotonic() < end and any(
                not c.queue.empty() for c in list(self._clients)):
            time.sleep(0.01)
        loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(timeout=10)

    def __enter__(self) -> "FrameBroadcaster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- publishing (any thread) -----------------------------------------------------------------
    def publish(self, frame: MotionFrame) -> None:
        """Queue ``frame`` for every connected client (thread-safe, never blocks)."""
        self.publish_bytes(protocol.encode_frame(frame))

    def publish_end(self, frames: int) -> None:
        """Queue the ``end`` message (``frames``: how many frames the utterance had)."""
        self.publish_bytes(protocol.encode_end(frames))

    def publish_bytes(self, data: bytes) -> None:
        """Queue an already encoded message for every connected client (thread-safe)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._fanout, data)
        except RuntimeError:                  # loop closed between the check and the call
            pass

    # the pacing.Output protocol
    def encode(self, frame: MotionFrame) -> bytes:
        return protocol.encode_frame(frame)

    def transmit(self, data: bytes) -> None:
        self.publish_bytes(data)

    def close(self) -> None:
        self.stop(drain_s=1.0)

    # -- server side (event loop thread) --------------------------------------------------------
    def _fanout(self, data: bytes) -> None:
        self.stats.published += 1
        for c in self._clients:
            if c.queue.full():
                c.queue.get_nowait()
                c.stats.dropped += 1
            c.queue.put_nowait(data)

    def _authorized(self, request: Request) -> bool:
        if not self.token:
            return True
        query = parse_qs(urlsplit(request.path).query)
        offered = query.get("token", [""])[0]
        auth = request.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            offered = offered or auth[7:].strip()
        return token_matches(offered, self.token)

    def _process_request(self, conn: ServerConnection, request: Request) -> Response | None:
        peer = _peer(conn)
        if not self.token and not host_header_allowed(request.headers.get("Host")):
            self.stats.rejected += 1
            self.log(f"ws: refused {peer}: Host {request.headers.get('Host')!r} is not a loopback name")
            return conn.respond(HTTPStatus.FORBIDDEN, "Host not allowed (this server is local only)\n")
        if not self._authorized(request):
            self.stats.rejected += 1
            self.log(f"ws: refused {peer}: missing or wrong token")
            return conn.respond(HTTPStatus.UNAUTHORIZED, "a valid token is required (?token=...)\n")
        upgrade = "websocket" in request.headers.get("Upgrade", "").lower()
        if not upgrade:
            if self.process_request is not None:
                out = self.process_request(request.path, request.headers)
                if out is not None:
                    status, ctype, body = out
                    resp = conn.respond(status, "")
                    resp.headers["Content-Type"] = ctype
                    resp.headers["Content-Length"] = str(len(body))
                    resp.body = body
                    return resp
            return None                          # the library answers 426 Upgrade Required
        if len(self._clients) >= self.max_clients:
            self.stats.rejected += 1
            self.log(f"ws: refused {peer}: {self.max_clients} clients already connected")
            return conn.respond(HTTPStatus.SERVICE_UNAVAILABLE, "too many clients\n")
        return None

    async def _handler(self, conn: ServerConnection) -> None:
        stats = ClientStats(next(self._ids), _peer(conn))
        self.stats.clients.append(stats)
        client = _Client(conn, stats, self.queue_size)
        if self.send_buffer:
            sock = conn.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, int(self.send_buffer))
        self._clients.add(client)
        sender = None
        try:
            await conn.send(self._header)
            stats.sent += 1
            sender = asyncio.create_task(self._send_loop(client))
            async for message in conn:
                reason = self._on_message(client, message)
                if reason is not None:
                    code, text = reason
                    self.stats.protocol_errors += 1
                    stats.close_reason = text
                    self.log(f"ws: closing client {stats.id} ({stats.address}): {text}")
                    await conn.close(code, text[:120])
                    break
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(client)
            stats.connected = False
            closed = [c for c in self.stats.clients if not c.connected]
            if len(closed) > KEEP_CLOSED_STATS:          # a server that runs for days stays bounded
                drop = {id(c) for c in closed[:len(closed) - KEEP_CLOSED_STATS]}
                self.stats.clients = [c for c in self.stats.clients if id(c) not in drop]
            if conn.close_code == 1009 and not stats.close_reason:
                self.stats.protocol_errors += 1
                stats.close_reason = f"message over {self.max_message} bytes"
                self.log(f"ws: closed client {stats.id} ({stats.address}): {stats.close_reason}")
            if sender is not None:
                sender.cancel()
            if self._audio_owner is client:
                self._audio_owner = None
                self.log(f"ws: audio client {stats.id} ({stats.address}) disconnected in the middle of its "
                         "audio; ending the utterance")
                abort = getattr(self, "on_audio_abort", None) or self.on_audio_end   # drops its queued audio
                if abort is not None:
                    abort()

    async def _send_loop(self, client: _Client) -> None:
        try:
            while True:
                data = await client.queue.get()
                await client.conn.send(data)
                client.stats.sent += 1
        except (ConnectionClosed, asyncio.CancelledError):
            pass

    def _on_message(self, client: _Client, message: bytes | str) -> tuple[int, str] | None:
        """Handle one client message; returns ``(close code, reason)`` to close the connection."""
        if isinstance(message, str):
            return 1003, "text messages are not accepted; send binary msgpack"
        try:
            msg = protocol.decode(message, self.max_message)
        except protocol.ProtocolError as e:
            return 1008, f"bad message: {e}"
        kind = msg["type"]
        if kind not in ("audio", "audio_end"):
            return 1008, f"clients may send only audio and audio_end messages, not {kind!r}"
        if self.on_audio is None:
            return 1008, "this server does not accept audio (start it with --ws-audio)"
        if self._audio_owner is not None and self._audio_owner is not client:
            return 1008, "another client is already sending audio"
        if kind == "audio":
            self._audio_owner = client
            if len(msg["samples"]):
                refused = self.on_audio(msg["samples"])     # a reason (str) when the audio queue is full
                if refused:
                    return 1013, str(refused)
        else:
            self._audio_owner = None
            if self.on_audio_end is not None:
                self.on_audio_end()
        return None


def _peer(conn: ServerConnection) -> str:
    try:
        host, port = conn.remote_address[:2]
        return f"{host}:{port}"
    except Exception:
        return "?"
