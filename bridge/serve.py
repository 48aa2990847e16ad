"""``chatanyone serve``: the browser viewer, an avatar and the audio over HTTP, the motion over the WebSocket.

What runs:

* an HTTP server (standard library :mod:`http.server`, loopback by default) with exactly these routes,
  nothing else (no directory listing, no file system paths)::

      /  /index.html  /viewer.js  /THIRD_PARTY_LICENSES.txt   the bundled viewer (bridge/viewer/dist/)
      /config.json     the page's configuration (below)
      /avatar.vrm      the avatar: --avatar, else the one the caller builds (``default_avatar``; ``chatanyone
                       serve`` passes exporters.vrm_avatar's procedural VRM 1.0, built in memory once)
      /audio           the clip's audio, when there is one

  Connections are bounded: at most :data:`MAX_HTTP_CONNECTIONS` at once (more are closed at once), each
  with a :data:`HTTP_TIMEOUT_S` socket timeout, one request per connection.

* **Which audio is served**: only a file the user named (``--audio``, or the speech file given as the
  source), or a clip's ``meta["audio_source"]`` after :func:`open_served_audio` checked that it is a
  regular file with an audio extension that libsndfile decodes as audio. The file is opened once at start
  and served from that open descriptor, so renaming or replacing the path later changes nothing. A clip
  whose ``audio_source`` names ``/etc/passwd`` plays without sound (and says why); ``/audio`` is then 404.

* the WebSocket motion stream (:mod:`bridge.protocol`: a header, then frames at the clip's fps, then
  ``end``), paced on the wall clock by :class:`bridge.pacing.Pacer`. The clip plays when a viewer is
  connected and starts again from frame 0 after a one-second pause, so a page opened at any time sees
  motion; the viewer keeps the audio within 0.1 s of the frames' ``time``.

``/config.json`` carries the tables the page needs, so that they exist once, in Python:
``smplx_to_vrm`` (:data:`motion.conventions.SMPLX_TO_VRM`), ``arkit_to_vrm_preset``
(:data:`motion.conventions.ARKIT_TO_VRM_EXPRESSION`, used for VRMs without ARKit expressions), ``ws_port``,
``avatar_url``, ``audio_url`` and ``audio_offset_s`` (audio time of frame 0: ``meta["audio_offset_s"]``).

Access (:mod:`bridge.access`): a host that does not resolve to loopback addresses only needs a token
(``--host 0.0.0.0 --token SECRET``); the WebSocket and the non-public HTTP routes (``/config.json``,
``/audio``) then require ``?token=SECRET``; open the page as ``http://HOST:PORT/?token=SECRET``. The viewer
code, its licences and the avatar stay public. Without a token every HTTP request must carry a loopback
``Host:`` (``127.0.0.1:PORT``, ``localhost:PORT``, ``[::1]:PORT``), else HTTP 403 (DNS rebinding).
"""
from __future__ import annotations

import argparse
import errno
import json
import mimetypes
import os
import socket
import sys
import threading
import time
import webbrowser
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Callable
from urllib.parse import parse_qs, urlsplit

from motion.errors import ChatAnyoneError

from .access import bound_is_local, host_header_allowed, is_local, token_matches

if TYPE_CHECKING:  # motion.clip (numpy) is imported when needed: keeps `chatanyone --help` fast
    from motion.clip import MotionClip

#: the bundled viewer (built by bridge/viewer/build.mjs, shipped as package data)
DIST = Path(__file__).resolve().parent / "viewer" / "dist"
DIST_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/index.html": ("index.html", "text/html; charset=utf-8"),
    "/viewer.js": ("viewer.js", "text/javascript; charset=utf-8"),
    "/THIRD_PARTY_LICENSES.txt": ("THIRD_PARTY_LICENSES.txt", "text/plain; charset=utf-8"),
}
DEFAULT_HTTP_PORT = 8000
DEFAULT_WS_PORT = 8765
DEFAULT_HOST = "127.0.0.1"
#: pause between two plays of the clip (seconds)
LOOP_PAUSE_S = 1.0
#: most HTTP connections served at once; further connections are closed without an answer
MAX_HTTP_CONNECTIONS = 32
#: seconds an HTTP connection may stay idle (reading the request or writing the answer)
HTTP_TIMEOUT_S = 10.0
#: file name extensions served as audio (what motion.audio decodes: libsndfile's formats)
AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3"})
#: bytes per read when streaming the audio file
_CHUNK = 1 << 16
SAMPLE_AUDIO = Path(__file__).resolve().parents[1] / "chatanyone" / "samples" / "cmu_arctic_a0007.wav"


class ServeError(ChatAnyoneError):
    """``chatanyone serve`` cannot start: missing viewer bundle, port in use, bad source or options."""


def port_error(what: str, host: str, port: int, e: OSError) -> ServeError:
    if e.errno == errno.EADDRINUSE:
        return ServeError(f"{what} port {port} on {host} is in use (pick another port)")
    if e.errno == errno.EACCES:
        return ServeError(f"{what} port {port} on {host} needs privileges (pick a port above 1023)")
    return ServeError(f"cannot listen on {host}:{port} for the {what}: {e.strerror or e}")


# --------------------------------------------------------------------------------------------------
# HTTP: viewer, config, avatar, audio
# --------------------------------------------------------------------------------------------------
class ServedAudio:
    """An audio file opened once for serving: ``/audio`` reads this descriptor, never the path again.

    Use :func:`open_served_audio` to make one; :meth:`close` releases the descriptor.
    """

    def __init__(self, path: Path, fd: int, size: int):
        self.path, self.fd, self.size = path, fd, size
        self.content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"

    def chunks(self):
        """The file's bytes, in order, in chunks of up to 64 KiB (``os.pread``: safe from many threads)."""
        offset = 0
        while offset < self.size:
            data = os.pread(self.fd, min(_CHUNK, self.size - offset), offset)
            if not data:
                return
            offset += len(data)
            yield data

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def open_served_audio(path: str | os.PathLike) -> ServedAudio:
    """Open an audio file for ``/audio`` after checking it is one.

    Args:
        path: the file. It must be a regular file (symlinks are followed to one), carry one of
            :data:`AUDIO_SUFFIXES`, and be decodable as audio by libsndfile (``soundfile.info``).
    Returns:
        a :class:`ServedAudio` holding an open descriptor.
    Raises:
        ServeError: missing, not a regular file, not an audio extension, not decodable audio, unreadable.
    """
    import soundfile as sf
    p = Path(path)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise ServeError(f"audio file {p}: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        import stat
        if not stat.S_ISREG(st.st_mode):
            raise ServeError(f"audio file {p} is not a regular file")
        if p.suffix.lower() not in AUDIO_SUFFIXES:
            raise ServeError(f"{p} is not an audio file (expected {', '.join(sorted(AUDIO_SUFFIXES))})")
        try:
            with os.fdopen(os.dup(fd), "rb") as f:
                info = sf.info(f)
        except Exception as e:  # noqa: BLE001 - libsndfile raises several types for garbage
            raise ServeError(f"{p} is not decodable audio ({' '.join(str(e).split()) or type(e).__name__})") \
                from None
        if info.frames <= 0 or info.samplerate <= 0:
            raise ServeError(f"{p} holds no audio samples")
        return ServedAudio(p, fd, st.st_size)
    except BaseException:
        os.close(fd)
        raise


@dataclass
class SiteContent:
    """What the HTTP server serves.

    Attributes:
        avatar: the ``.vrm`` (or ``.glb``) file bytes served at ``/avatar.vrm``.
        audio: the audio served at ``/audio`` (``None``: no audio route); a path is opened and checked
            with :func:`open_served_audio` when the server starts.
        config: the page configuration served at ``/config.json`` (JSON-serialisable dict).
        token: when set, ``/config.json`` and ``/audio`` need ``?token=`` equal to it; when not set,
            every request needs a loopback ``Host:`` header.
    """

    avatar: bytes
    audio: ServedAudio | Path | None
    config: dict
    token: str | None = None


def check_dist() -> None:
    """Raises ServeError when the viewer bundle is missing (a source checkout without the built dist/)."""
    missing = [f for f, _ in DIST_FILES.values() if not (DIST / f).is_file()]
    if missing:
        raise ServeError(f"the viewer bundle is missing ({', '.join(sorted(set(missing)))} in {DIST}); "
                         "build it with: npm ci --prefix bridge/viewer && node bridge/viewer/build.mjs")


def _make_handler(site: SiteContent, audio: ServedAudio | None):
    dist = {route: ((DIST / name).read_bytes(), ctype) for route, (name, ctype) in DIST_FILES.items()}
    config = json.dumps(site.config).encode()

    class Handler(BaseHTTPRequestHandler):
        server_version = "chatanyone-serve"
        sys_version = ""
        timeout = HTTP_TIMEOUT_S        # socket timeout: an idle connection is closed after this

        def log_message(self, format, *args):  # noqa: A002 - http.server's signature
            pass  # quiet: the terminal shows the stream's status, not every request

        def _send(self, status: int, ctype: str, body: bytes | None = None, length: int | None = None,
                  head: bool = False) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body) if body is not None else length))
            self.send_header("Cache-Control", "no-store")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            if body is not None and not head:
                self.wfile.write(body)

        def _authorised(self, query: dict) -> bool:
            return token_matches(query.get("token", [""])[0], site.token)

        def _serve(self, head: bool) -> None:
            if site.token is None and not host_header_allowed(self.headers.get("Host")):
                return self._send(HTTPStatus.FORBIDDEN, "text/plain", b"Host not allowed (local only)\n",
                                  head=head)
            parts = urlsplit(self.path)
            route, query = parts.path, parse_qs(parts.query)
            if route in dist:
                body, ctype = dist[route]
                return self._send(HTTPStatus.OK, ctype, body, head=head)
            if route == "/avatar.vrm":
                return self._send(HTTPStatus.OK, "model/gltf-binary", site.avatar, head=head)
            if route in ("/config.json", "/audio"):
                if not self._authorised(query):
                    return self._send(HTTPStatus.FORBIDDEN, "text/plain", b"token required\n", head=head)
                if route == "/config.json":
                    return self._send(HTTPStatus.OK, "application/json", config, head=head)
                if audio is not None:
                    self._send(HTTPStatus.OK, audio.content_type, None, length=audio.size, head=True)
                    if not head:
                        for chunk in audio.chunks():
                            self.wfile.write(chunk)
                    return None
            return self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found\n", head=head)

        def do_GET(self):  # noqa: N802 - http.server's names
            try:
                self._serve(head=False)
            except (BrokenPipeError, ConnectionResetError, TimeoutError, OSError):
                pass  # the browser went away or stalled mid-response

        def do_HEAD(self):  # noqa: N802
            try:
                self._serve(head=True)
            except (BrokenPipeError, ConnectionResetError, TimeoutError, OSError):
                pass

    return Handler


class _BoundedHTTPServer(ThreadingHTTPServer):
    """:class:`ThreadingHTTPServer` with at most ``max_connections`` handler threads at once.

    A connection beyond the bound is closed at once (the client sees a reset or an empty reply) instead of
    getting a thread; handler sockets time out after :data:`HTTP_TIMEOUT_S` (``Handler.timeout``).
    """

    daemon_threads = True
    max_connections = MAX_HTTP_CONNECTIONS
    request_queue_size = 128    # listen backlog: bursts wait here and are then answered or closed at once

    def __init__(self, *args, **kwargs):
        self._slots = threading.BoundedSemaphore(self.max_connections)
        self.refused = 0
        super().__init__(*args, **kwargs)

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            self.refused += 1
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class ViewerHTTPServer:
    """The viewer's HTTP server in a background thread.

    Args:
        site: what to serve (:class:`SiteContent`).
        host, port: where to listen (``port=0``: any free port; see :attr:`port`).
    Raises:
        ServeError: the viewer bundle is missing, or the port is in use / not allowed.
    """

    def __init__(self, site: SiteContent, host: str = DEFAULT_HOST, port: int = DEFAULT_HTTP_PORT):
        check_dist()
        self._own_audio = isinstance(site.audio, (str, Path))
        audio = open_served_audio(site.audio) if self._own_audio else site.audio
        try:
            handler = _make_handler(site, audio)
            server_cls = _BoundedHTTPServer
            if ":" in host:  # IPv6 literal
                server_cls = type("BoundedHTTPServerV6", (_BoundedHTTPServer,), {"address_family": socket.AF_INET6})
            try:
                self._httpd = server_cls((host, port), handler)
            except OSError as e:
                raise port_error("HTTP", host, port, e) from None
            if site.token is None and not bound_is_local(self._httpd.server_address):
                self._httpd.server_close()
                raise ServeError(f"--host {host} listens on {self._httpd.server_address[0]}, not a loopback "
                                 "address: give a --token that viewers must present")
        except BaseException:
            if self._own_audio and audio is not None:
                audio.close()
            raise
        self._audio = audio
        self.host = host
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="chatanyone-http", daemon=True)

    def start(self) -> "ViewerHTTPServer":
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    @property
    def refused(self) -> int:
        """Connections closed unanswered because :data:`MAX_HTTP_CONNECTIONS` were already open."""
        return self._httpd.refused

    def close(self) -> None:
        """Stop serving and release the port (also when :meth:`start` was never called)."""
        if self._thread.is_alive():
            self._httpd.shutdown()
        self._httpd.server_close()
        if self._own_audio and self._audio is not None:
            self._audio.close()


# --------------------------------------------------------------------------------------------------
# The motion source
# --------------------------------------------------------------------------------------------------
@dataclass
class Source:
    """A clip to stream and the audio that goes with it (``audio_offset_s``: audio time of frame 0).

    ``audio`` is already opened and checked (:func:`open_served_audio`); ``None``: no sound.
    """

    clip: MotionClip
    audio: ServedAudio | None
    audio_offset_s: float = 0.0

    @property
    def audio_path(self) -> Path | None:
        return self.audio.path if self.audio is not None else None


def load_source(path: str | None, *, audio: str | None = None, seed: int = 0, quiet: bool = False) -> Source:
    """``CLIP.npz`` (its audio: ``audio``, or else ``meta["audio_source"]`` when that is a readable audio
    file; frame 0 at ``meta["audio_offset_s"]`` either way), or a speech audio file (generated once with
    :class:`motion.inference.MotionGenerator`), or ``None``: the shipped sample speech.

    A clip's ``audio_source`` is data inside a file, not something the user named: it is served only when
    :func:`open_served_audio` accepts it (a regular file with an audio extension that decodes as audio);
    otherwise the clip plays without sound and a line on stderr says why.

    Raises:
        ChatAnyoneError: the file is missing or unreadable, not a clip, ``audio`` is not an audio file, or
            audio the model cannot use.
    """
    src = Path(path) if path else SAMPLE_AUDIO
    if src.is_dir():
        raise ServeError(f"{src} is a directory, not a clip (.npz) or audio file")
    if not src.is_file():
        raise ServeError(f"{src} does not exist or is not a file")
    served = open_served_audio(audio) if audio else None
    try:
        if src.suffix.lower() == ".npz":
            from motion.clip import MotionClip
            clip = MotionClip.load(src)
            if served is None and clip.meta.get("audio_source"):
                p = Path(str(clip.meta["audio_source"]))
                try:
                    served = open_served_audio(p)
                except ServeError as e:
                    if not quiet:
                        print(f"chatanyone serve: not serving the clip's audio: {e}; playing without sound "
                              "(give it with --audio)", file=sys.stderr)
            return Source(clip, served, float(clip.meta.get("audio_offset_s", 0.0) or 0.0))
        from motion.inference import MotionGenerator
        if not quiet:
            print(f"generating motion for {src} ...", file=sys.stderr)
        clip = MotionGenerator().animate_file(src, seed=seed, progress=not quiet)
        if served is None:
            served = open_served_audio(src.resolve())
        return Source(clip, served, float(clip.meta.get("audio_offset_s", 0.0) or 0.0))
    except BaseException:
        if served is not None:
            served.close()
        raise


def avatar_bytes(path: str) -> bytes:
    """The bytes of the user's avatar file ``path`` (a .vrm or .glb).

    Raises:
        ServeError: the file cannot be read or is not a binary glTF.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ServeError(f"cannot read avatar {p}: {e.strerror or e}") from None
    if data[:4] != b"glTF":
        raise ServeError(f"avatar {p} is not a binary glTF (.vrm or .glb) file")
    return data


def page_config(ws_port: int, audio: bool, audio_offset_s: float) -> dict:
    """The viewer's ``/config.json`` (see the module docstring)."""
    from motion.conventions import ARKIT_TO_VRM_EXPRESSION
    from motion.conventions import SMPLX_TO_VRM
    return {
        "ws_port": int(ws_port), "avatar_url": "avatar.vrm", "audio_url": "audio" if audio else None,
        "audio_offset_s": float(audio_offset_s), "smplx_to_vrm": dict(SMPLX_TO_VRM),
        "arkit_to_vrm_preset": ARKIT_TO_VRM_EXPRESSION,
    }


# --------------------------------------------------------------------------------------------------
# Putting it together
# --------------------------------------------------------------------------------------------------
def serve(source: Source, *, host: str = DEFAULT_HOST, http_port: int = DEFAULT_HTTP_PORT,
          ws_port: int = DEFAULT_WS_PORT, token: str | None = None, avatar: str | None = None,
          default_avatar: Callable[[], bytes] | None = None, open_browser: bool = False, loops: int | None = None,
          quiet: bool = False) -> int:
    """Serve the viewer and stream ``source`` until Ctrl-C (or ``loops`` plays of the clip).

    Args:
        avatar: a ``.vrm``/``.glb`` file to serve at ``/avatar.vrm``.
        default_avatar: without ``avatar``, called once after the ports are bound for the avatar's bytes
            (``chatanyone serve`` passes the procedural VRM 1.0 avatar's builder; the bridge does not import
            the exporters).
    Raises:
        ServeError: a non-loopback ``host`` without ``token``, neither ``avatar`` nor ``default_avatar``, a
            port in use, the viewer bundle missing.
    """
    from bridge.pacing import Pacer
    from bridge.ws_server import FrameBroadcaster
    from motion.frames import clip_frames

    if not is_local(host) and not token:
        raise ServeError(f"--host {host} does not resolve to loopback addresses only: give a --token that "
                         "viewers must present")
    check_dist()
    if not avatar and default_avatar is None:
        raise ServeError("no avatar to serve: give --avatar FILE.vrm")
    user_avatar = avatar_bytes(avatar) if avatar else None
    ws = FrameBroadcaster(host, ws_port, token=token, fps=source.clip.fps).start()
    http = None
    try:
        site = SiteContent(user_avatar or b"", source.audio,
                           page_config(ws.port, source.audio is not None, source.audio_offset_s), token)
        http = ViewerHTTPServer(site, host, http_port)   # binds: a busy port fails before the avatar is built
        if user_avatar is None:
            site.avatar = default_avatar()
        http.start()
    except BaseException:
        if http is not None:
            http.close()
        ws.stop()
        if source.audio is not None:
            source.audio.close()
        raise
    url = http.url + (f"?token={token}" if token else "")
    ws_host = f"[{host}]" if ":" in host else host
    print(f"viewer: {url}  (stream ws://{ws_host}:{ws.port}, {source.clip.num_frames} frames at "
              f"{source.clip.fps:g} fps, audio: {source.audio_path or 'none'}); Ctrl-C stops", flush=True)
    if open_browser:
        webbrowser.open(url)
    played = 0
    try:
        while loops is None or played < loops:
            while not any(c.connected for c in ws.stats.clients):
                time.sleep(0.05)
            Pacer([ws], source_fps=source.clip.fps).run(clip_frames(source.clip))
            ws.publish_end(source.clip.num_frames)
            played += 1
            if not quiet:
                viewers = sum(c.connected for c in ws.stats.clients)
                print(f"played {source.clip.num_frames} frames to {viewers} viewer(s); {ws.stats.summary()}",
                      flush=True)
            time.sleep(LOOP_PAUSE_S)
    except KeyboardInterrupt:
        if not quiet:
            print("stopped", flush=True)
    finally:
        http.close()
        ws.stop()
        if source.audio is not None:
            source.audio.close()
    return 0


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    """Arguments of ``chatanyone serve`` (added to ``parser`` when given, e.g. a CLI subparser)."""
    p = parser or argparse.ArgumentParser(prog="chatanyone serve", description=__doc__.split("\n")[0])
    p.add_argument("source", nargs="?", default=None,
                   help="speech audio (motion generated once) or a MotionClip .npz (default: the sample speech)")
    p.add_argument("--port", type=int, default=DEFAULT_HTTP_PORT, help=f"HTTP port (default {DEFAULT_HTTP_PORT}; 0: any)")
    p.add_argument("--ws-port", type=int, default=DEFAULT_WS_PORT,
                   help=f"WebSocket stream port (default {DEFAULT_WS_PORT}; 0: any)")
    p.add_argument("--host", default=DEFAULT_HOST, help="address to listen on (default 127.0.0.1; others need --token)")
    p.add_argument("--token", default=None, help="secret viewers must present (?token=) when --host is not loopback")
    p.add_argument("--avatar", default=None, help="serve this .vrm/.glb instead of the procedural avatar")
    p.add_argument("--audio", default=None, help="audio file for a .npz clip (default: the clip's audio_source)")
    p.add_argument("--seed", type=int, default=0, help="random seed when generating from audio (default 0)")
    p.add_argument("--loops", type=int, default=None, help="stop after this many plays (default: until Ctrl-C)")
    p.add_argument("--open", action="store_true", help="open the viewer in the default web browser")
    p.add_argument("-q", "--quiet", action="store_true", help="print only the viewer's address line")
    return p


def run(a: argparse.Namespace, *, default_avatar: Callable[[], bytes] | None = None) -> int:
    """Run ``chatanyone serve`` from parsed arguments (:func:`build_parser`); ``default_avatar`` builds the
    avatar served without ``--avatar`` (:func:`serve`)."""
    for name in ("port", "ws_port"):
        v = getattr(a, name)
        if not 0 <= v <= 65535:
            raise ServeError(f"--{name.replace('_', '-')} must be in 0..65535, got {v}")
    if a.loops is not None and a.loops < 1:
        raise ServeError(f"--loops must be at least 1, got {a.loops}")
    source = load_source(a.source, audio=a.audio, seed=a.seed, quiet=a.quiet)
    return serve(source, host=a.host, http_port=a.port, ws_port=a.ws_port, token=a.token, avatar=a.avatar,
                 default_avatar=default_avatar, open_browser=a.open, loops=a.loops, quiet=a.quiet)
