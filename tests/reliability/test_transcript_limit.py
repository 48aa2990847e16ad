"""``animate --transcript`` on long audio (issue 15.2): forced alignment holds the whole audio and its memory
grows with the square of the length (1.6 GB at 3.2 min, over 6 GB at 10.7 min), so the command line takes at
most :data:`motion.options.TRANSCRIPT_MAX_S` seconds of audio with a transcript and says so in one line,
before the model loads; at the limit the transcript is accepted; the measured growth is real (alignment
alone, 1 vs 2 minutes of real speech with its real words)."""
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from chatanyone.cli import main
from motion.audio import load_audio
from motion.options import TRANSCRIPT_MAX_S, OptionError, check_transcript_length
from tests.conftest import DATA, REPO
from tests.reliability.test_bad_inputs import no_model, one_error_line  # noqa: F401 (fixture)

SAMPLE = REPO / "chatanyone" / "samples" / "cmu_arctic_a0007.wav"
TAKE = DATA / "beat2" / "2_scott_0_1_1"


def long_speech(path, seconds: float):
    """The shipped sample speech (4.0 s) repeated to ``seconds``."""
    a = load_audio(SAMPLE)
    sf.write(path, np.resize(a, int(seconds * 16000)), 16000, subtype="PCM_16")
    return path


def test_check():
    check_transcript_length(None, 10_000)
    check_transcript_length("  ", 10_000)
    check_transcript_length("hello world", TRANSCRIPT_MAX_S)
    with pytest.raises(OptionError, match="at most 3 minutes, this is 3.1"):
        check_transcript_length("hello world", TRANSCRIPT_MAX_S + 5)


def test_long_audio_with_a_transcript_is_one_error_line_before_the_model(tmp_path, capsys, no_model):
    audio = long_speech(tmp_path / "talk.wav", TRANSCRIPT_MAX_S + 10)
    before = audio.read_bytes()
    assert main(["animate", str(audio), "-o", str(tmp_path / "out"), "--transcript", "author of the danger trail"]) == 2
    line = one_error_line(capsys)
    assert "--transcript works on audio of at most 3 minutes, this is 3.2" in line
    assert "leave --transcript out" in line
    assert not (tmp_path / "out").exists() and audio.read_bytes() == before


def test_at_the_limit_the_transcript_reaches_the_generator(tmp_path, capsys, monkeypatch):
    """3 minutes exactly passes the check: the transcript is handed to generation (stubbed here: the real
    generation of 3 minutes takes minutes; benchmarks/transcript_memory.py runs it)."""
    import motion.inference

    audio = long_speech(tmp_path / "talk.wav", TRANSCRIPT_MAX_S)
    seen = {}

    class Stop(Exception):
        pass

    def animate_file(self, path, **kw):
        seen.update(kw)
        raise Stop
    monkeypatch.setattr(motion.inference.MotionGenerator, "__init__", lambda self, *a, **k: None)
    monkeypatch.setattr(motion.inference.MotionGenerator, "animate_file", animate_file)
    with pytest.raises(Stop):
        main(["animate", str(audio), "-o", str(tmp_path / "out"), "-q", "--transcript", "author of the danger trail"])
    assert seen["transcript"] == "author of the danger trail"


ALIGN = """
import sys
import numpy as np
from motion.audio import load_audio
from motion import features as F
from benchmarks.transcript_memory import take_words

def kb(key):
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith(key + ":"))

k = int(sys.argv[1]); take = sys.argv[2]
a = np.tile(load_audio(take + ".wav"), k)
words = " ".join(take_words(__import__("pathlib").Path(take + ".TextGrid")) * k)
open("/proc/self/clear_refs", "w").write("5")   # reset the peak (VmHWM) to the current RSS: imports do not count
before = kb("VmRSS")
segs = F._align_segments(F._to_int16(a), words)
print(len(segs), (kb("VmHWM") - before) / 1024)
"""


@pytest.mark.skipif(not TAKE.with_suffix(".TextGrid").is_file(), reason=f"needs {TAKE}.wav/.TextGrid (../shared/data)")
def test_alignment_memory_grows_faster_than_the_audio():
    """Why the limit: aligning twice the speech (64 s -> 128 s, words repeated) needed more than 2.5x the
    memory (measured +137 MB -> +448 MB); every phone was aligned both times."""
    grow = {}
    for k in (1, 2):
        r = subprocess.run([sys.executable, "-c", ALIGN, str(k), str(TAKE)], capture_output=True, text=True,
                           cwd=REPO, timeout=120)
        assert r.returncode == 0, r.stderr
        n, mb = r.stdout.split()
        grow[k] = (int(n), float(mb))
    assert abs(grow[2][0] - 2 * grow[1][0]) <= 2           # 682 and 1363 phones (one silence shared)
    assert grow[2][1] > 2.5 * grow[1][1], grow
