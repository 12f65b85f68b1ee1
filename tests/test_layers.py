"""The layers point one way: every import in the source tree is checked against the layer map.

contract (torch-free: package format, options, tokenizer, version) is at the bottom; model/
(torch) and service/ (ONNX Runtime) sit on it and never import each other; export/ turns model/
checkpoints into packages and checks them with the service's runtime; bench/ and the CLI may use
everything. A new upward import fails here with the file and line that made it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LAYERS = ("contract", "model", "service", "export", "bench", "tongyeok")
ALLOWED: dict[str, set[str]] = {
    "contract": set(),
    "model": {"contract"},
    "service": {"contract"},
    "export": {"contract", "model", "service"},
    "bench": {"contract", "model", "export", "service"},
    "tongyeok": {"contract", "model", "export", "service", "bench"},
}


def project_imports(path: Path) -> list[tuple[int, str]]:
    """(line, top-level project package) for every import in ``path``, lazy ones included."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [(node.lineno, n.split(".")[0]) for n in names if n.split(".")[0] in LAYERS]
    return found


@pytest.mark.parametrize("layer", LAYERS)
def test_no_layer_imports_upward(layer: str) -> None:
    files = sorted((REPO / layer).rglob("*.py"))
    assert files, f"no sources under {layer}/"
    wrong = [
        f"{path.relative_to(REPO)}:{line} imports {target}"
        for path in files
        for line, target in project_imports(path)
        if target != layer and target not in ALLOWED[layer]
    ]
    assert not wrong, "imports against the layer order:\n" + "\n".join(wrong)


def test_the_check_sees_lazy_imports(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from model.search import search\n    import service.api\n")
    assert project_imports(source) == [(2, "model"), (3, "service")]
