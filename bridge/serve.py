"""``chatanyone serve``: the browser viewer, an avatar and the audio over HTTP, the motion over the WebSocket.

What runs:

* an HTTP server (standard library :mod:`http.server`, one thread per request, loopback by default) with
  exactly these routes, nothing else (no directory listing, no file system paths)::

      /  /index.html  /viewer.js  /THIRD_PARTY_LICENSES.txt   the bundled viewer (bridge/viewer/dist/)
      /config.json     the page's configuration (below)
      /avatar.vrm      the avatar: exporters.vrm_avatar's procedural VRM 1.0 (built in memory once), or --avatar
      /audio           the clip's audio file, when there is one

* the WebSocket motion stream (:mod:`bridge.protocol`: a header, then frames at the clip's fps, then
  ``end``), paced on the wall clock by :class:`bridge.pacing.Pacer`. The clip plays when a viewer is
  connected and starts again from frame 0 after a one-second pause, so a page opened at any time sees
  motion; the viewer keeps the audio within 0.1 s of the frames' ``time``.

``/config.json`` carries the tables the page needs, so that they exist once, in Python:
``smplx_to_vrm`` (:data:`motion.conventions.SMPLX_TO_VRM`), ``arkit_to_vrm_preset``
(:data:`exporters.vrma.ARKIT_TO_VRM_EXPRESSION`, used for VRMs without ARKit expressions), ``ws_port``,
``avatar_url``, ``audio_url`` and ``audio_offset_s`` (audio time of frame 0: ``meta["audio_offset_s"]``).

Binding to a non-loopback address needs a token (``--host 0.0.0.0 --token SECRET``): the WebSocket and the
non-public HTTP routes (``/config.json``, ``/audio``) then require ``?token=SECRET``; open the page as
``http://HOST:PORT/?token=SECRET``. The viewer code, its licences and the avatar stay public.
"""
from __future__ import annotations

import argparse
import errno
import hmac
import json
import mimetypes
import shutil
import socket
import sys
import threading
import time
import webbrowser
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from motion.errors import ChatAnyoneError

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
@dataclass
class SiteContent:
    """What the HTTP server serves.

    Attributes:
        avatar: the ``.vrm`` (or ``.glb``) file bytes served at ``/avatar.vrm``.
        audio_path: the audio file served at ``/audio`` (``None``: no audio route).
        config: the page configuration served at ``/config.json`` (JSON-serialisable dict).
        token: when set, ``/config.json`` and ``/audio`` need ``?token=`` equal to it.
    """

    avatar: bytes
    audio_path: Path | None
    config: dict
    token: str | None = None


def check_dist() -> None:
    """Raises ServeError when the viewer bundle is missing (a source checkout without the built dist/)."""
    missing = [f for f, _ in DIST_FILES.values() if not (DIST / f).is_file()]
    if missing:
        raise ServeError(f"the viewer bundle is missing ({', '.join(sorted(set(missing)))} in {DIST}); "
                         "build it with: npm ci --prefix bridge/viewer && node bridge/viewer/build.mjs")


def _make_handler(site: SiteContent):
    dist = {route: ((DIST / name).read_bytes(), ctype) for route, (name, ctype) in DIST_FILES.items()}
    config = json.dumps(site.config).encode()
    audio_type = (mimetypes.guess_type(site.audio_path.name)[0] or "application/octet-stream") \
        if site.audio_path else None

    class Handler(BaseHTTPRequestHandler):
        server_version = "chatanyone-serve"
        sys_version = ""

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
            if site.token is None:
                return True
            given = query.get("token", [""])[0]
            return hmac.compare_digest(given.encode(), site.token.encode())

        def _serve(self, head: bool) -> None:
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
                if site.audio_path is not None:
                    try:
                        size = site.audio_path.stat().st_size
                        with site.audio_path.open("rb") as f:
                            self._send(HTTPStatus.OK, audio_type, None, length=size, head=True)
                            if not head:
                                shutil.copyfileobj(f, self.wfile)
                        return None
                    except OSError:
                        return self._send(HTTPStatus.NOT_FOUND, "text/plain", b"audio file gone\n", head=head)
            return self._send(HTTPStatus.NOT_FOUND, "text/plain", b"not found\n", head=head)

        def do_GET(self):  # noqa: N802 - http.server's names
            try:
                self._serve(head=False)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the browser went away mid-response

        def do_HEAD(self):  # noqa: N802
            try:
                self._serve(head=True)
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler


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
        handler = _make_handler(site)
        server_cls = ThreadingHTTPServer
        if ":" in host:  # IPv6 literal
            server_cls = type("ThreadingHTTPServerV6", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6})
        try:
            self._httpd = server_cls((host, port), handler)
        except OSError as e:
            raise port_error("HTTP", host, port, e) from None
        self._httpd.daemon_threads = True
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

    def close(self) -> None:
        """Stop serving and release the port (also when :meth:`start` was never called)."""
        if self._thread.is_alive():
            self._httpd.shutdown()
        self._httpd.server_close()


# --------------------------------------------------------------------------------------------------
# The motion source
# --------------------------------------------------------------------------------------------------
@dataclass
class Source:
    """A clip to stream and the audio that goes with it (``audio_offset_s``: audio time of frame 0)."""

    clip: MotionClip
    audio_path: Path | None
    audio_offset_s: float = 0.0


def load_source(path: str | None, *, audio: str | None = None, seed: int = 0, quiet: bool = False) -> Source:
    """``CLIP.npz`` (its audio: ``audio``, or else ``meta["audio_source"]`` when that file exists; frame 0 at
    ``meta["audio_offset_s"]`` either way), or a speech
    audio file (generated once with :class:`motion.inference.MotionGenerator`), or ``None``: the shipped
    sample speech.

    Raises:
        ChatAnyoneError: the file is missing or unreadable, not a clip, or audio the model cannot use.
    """
    src = Path(path) if path else SAMPLE_AUDIO
    if not src.is_file():
        raise ServeError(f"{src} does not exist or is not a file")
    audio_path = Path(audio) if audio else None
    if audio_path is not None and not audio_path.is_file():
        raise ServeError(f"audio file {audio_path} does not exist")
    if src.suffix.lower() == ".npz":
        from motion.clip import MotionClip
        clip = MotionClip.load(src)
        if audio_path is None and clip.meta.get("audio_source"):
            p = Path(str(clip.meta["audio_source"]))
            if p.is_file():
                audio_path = p
            elif not quiet:
                print(f"chatanyone serve: the clip's audio {p} is missing; playing without sound "
                      "(give it with --audio)", file=sys.stderr)
        return Source(clip, audio_path, float(clip.meta.get("audio_offset_s", 0.0) or 0.0))
    from motion.inference import MotionGenerator
    if not quiet:
        print(f"generating motion for {src} ...", file=sys.stderr)
    clip = MotionGenerator().animate_file(src, seed=seed, progress=not quiet)
    return Source(clip, audio_path or src.resolve(), float(clip.meta.get("audio_offset_s", 0.0) or 0.0))


def avatar_bytes(path: str | None) -> bytes:
    """The avatar to serve: the file at ``path`` (a .vrm or .glb), or the procedural VRM 1.0 avatar."""
    if path:
        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as e:
            raise ServeError(f"cannot read avatar {p}: {e.strerror or e}") from None
        if data[:4] != b"glTF":
            raise ServeError(f"avatar {p} is not a binary glTF (.vrm or .glb) file")
        return data
    from exporters.vrm_avatar import vrm_avatar_bytes
    return vrm_avatar_bytes()


def page_config(ws_port: int, audio: bool, audio_offset_s: float) -> dict:
    """The viewer's ``/config.json`` (see the module docstring)."""
    from exporters.vrma import ARKIT_TO_VRM_EXPRESSION
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
          open_browser: bool = False, loops: int | None = None, quiet: bool = False) -> int:
    """Serve the viewer and stream ``source`` until Ctrl-C (or ``loops`` plays of the clip).

    Raises:
        ServeError: a non-loopback ``host`` without ``token``, a port in use, the viewer bundle missing.
    """
    from bridge.pacing import Pacer
    from bridge.ws_server import FrameBroadcaster, is_local
    from motion.frames import clip_frames

    if not is_local(host) and not token:
        raise ServeError(f"--host {host} is not a loopback address: give a --token that viewers must present")
    check_dist()
    user_avatar = avatar_bytes(avatar) if avatar else None
    ws = FrameBroadcaster(host, ws_port, token=token, fps=source.clip.fps).start()
    http = None
    try:
        site = SiteContent(user_avatar or b"", source.audio_path,
                           page_config(ws.port, source.audio_path is not None, source.audio_offset_s), token)
        http = ViewerHTTPServer(site, host, http_port)   # binds: a busy port fails before the avatar is built
        if user_avatar is None:
            site.avatar = avatar_bytes(None)
        http.start()
    except BaseException:
        if http is not None:
            http.close()
        ws.stop()
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


def run(a: argparse.Namespace) -> int:
    """Run ``chatanyone serve`` from parsed arguments (:func:`build_parser`)."""
    for name in ("port", "ws_port"):
        v = getattr(a, name)
        if not 0 <= v <= 65535:
            raise ServeError(f"--{name.replace('_', '-')} must be in 0..65535, got {v}")
    if a.loops is not None and a.loops < 1:
        raise ServeError(f"--loops must be at least 1, got {a.loops}")
    source = load_source(a.source, audio=a.audio, seed=a.seed, quiet=a.quiet)
    return serve(source, host=a.host, http_port=a.port, ws_port=a.ws_port, token=a.token, avatar=a.avatar,
                 open_browser=a.open, loops=a.loops, quiet=a.quiet)


def main(argv: list[str] | None = None) -> int:
    a = build_parser().parse_args(argv)
    try:
        return run(a)
    except ChatAnyoneError as e:
        print(f"chatanyone: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
