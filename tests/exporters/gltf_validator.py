"""Run the Khronos glTF validator (npm ``gltf-validator``, installed by ``npm ci --prefix tests/js``)."""
import json
import shutil
import subprocess
from pathlib import Path

import pytest

JS = Path(__file__).resolve().parents[1] / "js"


def validate(path: Path) -> dict:
    """The validator's JSON report for ``path``; skips the test when the validator is not installed."""
    if not (JS / "node_modules" / "gltf-validator").is_dir():
        pytest.skip("glTF validator not installed: run `npm ci --prefix tests/js`")
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not on PATH (needed for the Khronos glTF validator)")
    out = subprocess.run([node, str(JS / "validate.mjs"), str(path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    for m in report["issues"]["messages"]:
        if m["severity"] < 2:
            print(f"[validator severity {m['severity']}] {m['code']}: {m['message']} at {m.get('pointer')}")
    return report
