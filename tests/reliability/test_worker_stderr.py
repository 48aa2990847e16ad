"""``prepare`` and ``train`` (commands that start worker processes) drop native libraries' log lines
(MediaPipe's absl, LiteRT) from their stderr and their workers', keep everything else, and show the native
lines with ``-v`` (issue 15 item 9: MediaPipe/absl lines). Real processes: stderr is a pipe, as in a shell
redirect."""
import subprocess
import sys
import textwrap

import pytest

from chatanyone.cli import NATIVE_LOG_LINE, _split_verbose, _without_native
from tests.conftest import DATA

GRID = DATA / "videos" / "grid"

# Lines a MediaPipe 0.10 face landmarker printed during `chatanyone prepare` on a GRID clip (before this test)
NATIVE = [
    b"WARNING: Logging before InitGoogle() is written to STDERR",
    b"W0000 00:00:1796177016.065643   12018 face_landmarker_graph.cc:181] Sets FaceBlendshapesGraph "
    b"acceleration to xnnpack by default.",
    b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.",
    b"INFO: [environment.cc:36] Creating LiteRT environment with options",
    b"WARNING: [model_load.cc:402] Sparsity tensors may not yet be fully supported.",
    b"I0000 00:00:1733 4242 gl_context.cc:357] GL version: 3.2",
    b"Note: Illegal Audio-MPEG-Header 0x00000000 at offset 2. Note: Trying to resync...",
]
KEPT = [
    b"E0000 00:00:1796177016.065643   12018 calculator_graph.cc:928] an error is kept",
    b"ERROR: [model_load.cc:402] failed",
    b"WARNING:root:a Python logging warning",
    b"/x/prepare.py:12: UserWarning: a Python warning",
    b"Traceback (most recent call last):",
    b"warning grid__x: A/V lag +5 frames",
    b"chatanyone: error: something",
]


def test_native_line_patterns():
    assert all(NATIVE_LOG_LINE.match(x) for x in NATIVE)
    assert not any(NATIVE_LOG_LINE.match(x) for x in KEPT)
    # after a progress bar's partial line (no newline before the native line): the bar stays, the line goes
    bar = b"\rprepare:   0%|          | 0/1 [00:00<?, ?clip/s]\x1b[A"
    assert _without_native(bar + NATIVE[1] + b"\n") == bar
    assert _without_native(bar + b"\n") == bar + b"\n"
    tqdm = b"\rprepare:   0%|          | 0/1 [00:00<?, ?clip/s]"          # what a real run showed
    assert _without_native(tqdm + NATIVE[0] + b"\n") == tqdm
    assert _without_native(b"x " + NATIVE[2] + b"\n") == b"x " + NATIVE[2] + b"\n"   # plain lines: at the start only


def test_verbose_flag_is_ours():
    assert _split_verbose(["a.mp4", "-v", "-o", "out"]) == (["a.mp4", "-o", "out"], True)
    assert _split_verbose(["--verbose", "x"]) == (["x"], True)
    assert _split_verbose(["x", "--", "-v"]) == (["x", "--", "-v"], False)


CHILD = textwrap.dedent("""
    import multiprocessing as mp, os, sys, time
    from chatanyone.cli import filter_native_stderr

    def worker():
        os.write(2, b"W0000 00:00:1.5   7 inference_feedback_manager.cc:121] native, worker\\n")
        os.write(2, b"worker says hello\\n")
        raise SystemExit("worker exits with a message")

    if __name__ == "__main__":
        with filter_native_stderr(len(sys.argv) < 2):
            os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n")
            print("parent python line", file=sys.stderr, flush=True)
            p = mp.get_context("spawn").Process(target=worker)
            p.start(); p.join()
            os.write(2, b"\\rbar 1/2\\rbar 2/2")
            os.write(2, b"WARNING: [model_load.cc:402] Sparsity tensors may not yet be fully supported.\\n")
        print("after the block", file=sys.stderr, flush=True)
""")


def test_workers_native_lines_dropped_their_messages_kept(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    r = subprocess.run([sys.executable, str(script)], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stderr.replace(b"\r", b"|").splitlines() == [
        b"parent python line", b"worker says hello", b"worker exits with a message",
        b"|bar 1/2|bar 2/2after the block"]        # the native line and its newline went, as if never written
    r = subprocess.run([sys.executable, str(script), "off"], capture_output=True, timeout=60)
    assert r.stderr.count(b"W0000") == 1 and r.stderr.count(b"INFO: Created") == 1


@pytest.mark.skipif(not (GRID / "bbaf2n.mpg").is_file(), reason=f"needs the GRID clip {GRID}/bbaf2n.mpg (../shared/data)")
def test_a_real_prepare_prints_no_mediapipe_lines_unless_verbose(tmp_path):
    cmd = [sys.executable, "-m", "chatanyone.cli", "prepare", str(GRID / "bbaf2n.mpg"), "--quiet", "--no-pose"]
    r = subprocess.run(cmd + ["-o", str(tmp_path / "a")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "prepared grid__bbaf2n" in r.stdout, r.stderr
    assert r.stderr == "", r.stderr                          # 63 native lines before
    r = subprocess.run(cmd + ["-v", "-o", str(tmp_path / "b")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "prepared grid__bbaf2n" in r.stdout
    assert "Created TensorFlow Lite XNNPACK delegate" in r.stderr and "W0000" in r.stderr


def test_train_error_line_passes_the_filter(tmp_path):
    """A delegated command's own error line is not a native line: it reaches stderr, alone."""
    r = subprocess.run([sys.executable, "-m", "chatanyone.cli", "train", str(tmp_path / "missing.toml")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1 and "missing.toml" in r.stderr, r.stderr
