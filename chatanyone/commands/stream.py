"""``chatanyone stream``: generate motion with the streaming model and send it in real time, in sync with the
audio, to VMC, Live Link Face and/or the WebSocket stream (:func:`bridge.stream.run_stream`)."""
from __future__ import annotations

import argparse

DESCRIPTION = ("Generate motion with the streaming model and send it in real time, in sync with the audio, to "
               "one or more outputs.")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``stream`` options."""
    parser.add_argument("input", nargs="?", default=None, help="speech AUDIO file, or a CLIP.npz to stream as is")
    parser.add_argument("--mic", action="store_true", help="live microphone input (optional extra 'live')")
    parser.add_argument("--ws-audio", action="store_true",
                        help="take PCM16 16 kHz audio chunks pushed by a WebSocket client (needs --ws)")
    parser.add_argument("--vmc", metavar="HOST:PORT", help="send VMC (OSC/UDP), e.g. 127.0.0.1:39539")
    parser.add_argument("--livelink", metavar="HOST:PORT", help="send Live Link Face (UDP), e.g. 127.0.0.1:11111")
    parser.add_argument("--ws", type=int, metavar="PORT", help="serve the WebSocket stream on this port (e.g. 8765)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="WebSocket bind address (default 127.0.0.1; any other needs --token)")
    parser.add_argument("--token", help="secret WebSocket clients must send (?token=... or Authorization: Bearer)")
    parser.add_argument("--play", action="store_true", help="play the audio locally in sync (optional extra 'live')")
    parser.add_argument("--fps", type=float, default=60.0, help="VMC and Live Link rate, 1..240 (default 60; slerped from 30)")
    parser.add_argument("--blendshapes", choices=["vrm0", "perfectsync"], default="vrm0",
                        help="VMC blendshape names: VRM0 presets (A, I, U, E, O, Blink, Joy, ...) or the 52 ARKit "
                             "names in UpperCamel (default vrm0)")
    parser.add_argument("--subject", default="ChatAnyone", help="Live Link subject name (default ChatAnyone)")
    parser.add_argument("--delay", type=float, default=None,
                        help="seconds between the audio start and frame 0, 0..10 (default: 0.2 for files, the model's "
                             "lookahead + 0.2 for live input)")
    parser.add_argument("--device", default=None, help="audio device for --play/--mic (default: the system's)")
    parser.add_argument("--seed", type=int, default=0, help="random seed, 0..2^64-1 (default 0)")
    parser.add_argument("--style", default=None, help="style preset (a training dataset name)")
    parser.add_argument("--style-reference", default=None, metavar="CLIP",
                        help="take the manner of motion from this clip: a MotionClip .npz or a Live Link Face .csv")
    parser.add_argument("--checkpoint", default=None, help="model .safetensors (default: shipped)")
    parser.add_argument("--mouth-scale", choices=("iphone", "native"), default="iphone",
                        help="mouth weights in iPhone ARKit scale (default) or the model's native scale")
    parser.add_argument("-q", "--quiet", action="store_true", help="no status lines or summary")


def run(a: argparse.Namespace) -> int:
    """Stream until the input ends (or Ctrl-C); prints the summary unless ``-q``; returns 0."""
    from bridge.stream import StreamOptions, run_stream
    opts = StreamOptions(
        input=a.input, mic=a.mic, ws_audio=a.ws_audio, vmc=a.vmc, livelink=a.livelink, ws=a.ws, host=a.host,
        token=a.token, play=a.play, fps=a.fps, blendshapes=a.blendshapes, subject=a.subject, seed=a.seed,
        style=a.style, style_reference=a.style_reference, checkpoint=a.checkpoint, mouth_scale=a.mouth_scale == "iphone", delay=a.delay,
        device=a.device)
    result = run_stream(opts, log=(lambda m: None) if a.quiet else None)
    if not a.quiet:
        for line in result.summary_lines():
            print(line)
    return 0
