"""A real clip for the consumer tests (Blender, three.js): the shipped model animating the shipped sample speech."""
import functools
from pathlib import Path

from motion.clip import MotionClip

SAMPLE_WAV = Path(__file__).resolve().parents[2] / "chatanyone" / "samples" / "cmu_arctic_a0007.wav"


@functools.lru_cache(maxsize=1)
def sample_clip() -> MotionClip:
    """``MotionGenerator().animate_file(SAMPLE_WAV)`` (4.0 s, 120 frames at 30 fps; ~10 s on a CPU), once
    per test session. Treat it as read-only."""
    from motion.inference import MotionGenerator

    return MotionGenerator().animate_file(SAMPLE_WAV, seed=0)
