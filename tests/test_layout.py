"""DESIGN.md's layout, checked on the import statements of every module (parsed, not imported):

* ``motion/`` imports none of ``bridge``, ``exporters``, ``generator``, ``chatanyone``;
* ``exporters/`` does not know the model (no ``motion.datasets``, training, checkpoint or inference module)
  and imports no ``bridge``/``generator``/``chatanyone``;
* ``bridge/`` imports no ``exporters``/``generator``/``chatanyone`` (the command layer composes them);
* nothing but ``chatanyone`` (the CLI) imports ``generator``.
"""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: motion modules that are the model, its data or its training: the exporters must not import them.
MODEL_MODULES = ("motion.datasets", "motion.train", "motion.checkpoint", "motion.inference", "motion.streaming",
                 "motion.diffusion", "motion.model", "motion.features", "motion.phone_features", "motion.prepare",
                 "motion.evaluate", "motion.distributed")
FORBIDDEN = {
    "motion": ("bridge", "exporters", "generator", "chatanyone"),
    "exporters": ("bridge", "generator", "chatanyone") + MODEL_MODULES,
    "bridge": ("exporters", "generator", "chatanyone"),
}


def absolute_imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every absolute import in ``path`` (top level and inside functions)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return out


def _matches(module: str, banned: str) -> bool:
    return module == banned or module.startswith(banned + ".")


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_follow_the_layout(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, f"no modules under {package}/"
    bad = [f"{f.relative_to(ROOT)}:{line}: {m}" for f in files for line, m in absolute_imports(f)
           if any(_matches(m, b) for b in FORBIDDEN[package])]
    assert not bad, "imports against DESIGN.md's layout:\n" + "\n".join(bad)


def test_the_scanner_sees_function_level_imports(tmp_path):
    """The check would fail: a lazy ``from exporters.vrm_avatar import ...`` inside a function is found."""
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from exporters.vrm_avatar import vrm_avatar_bytes\n    from motion import datasets\n")
    mods = [m for _, m in absolute_imports(f)]
    assert any(_matches(m, "exporters") for m in mods) and any(_matches(m, "motion.datasets") for m in mods)
