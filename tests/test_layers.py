"""The layers point one way: every import in the source tree is checked against the layer map.

contract (torch-free: package format, options, tokenizer, version) is at the bottom; model/
(torch) and service/ (ONNX Runtime) sit on it and never import each other; export/ turns model/
checkpoints into packages and checks them with the service's runtime; bench/ and the CLI may use
everything. Inside service/, the sub-packages follow one request's way down: api (HTTP edge and
routes) -> usecase (what a translation request means) -> scheduling (batching, the engine thread,
the repository) -> decoding (engine, search, rows) -> runtime (ONNX Runtime, device ops); settings,
errors and metrics sit between runtime and decoding, usable by all but runtime. A new upward import
fails here with the file and line that made it; so does a circle of module imports.
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


# service/'s floors, bottom first: a module may import its own floor and those below it.
SERVICE_FLOORS: tuple[tuple[str, ...], ...] = (
    ("runtime",),
    ("settings", "errors", "metrics", "logs", "state"),
    ("decoding",),
    ("scheduling",),
    ("usecase",),
    ("api",),
)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) for every project import in ``path``, lazy ones included; ``from
    package import name`` counts as ``package.name`` (it may be a module)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found += [(node.lineno, n) for n in names if n.split(".")[0] in LAYERS]
    return found


def project_imports(path: Path) -> list[tuple[int, str]]:
    """(line, top-level project package) for every import in ``path``, lazy ones included."""
    return [(line, name.split(".")[0]) for line, name in imported_modules(path)]


def service_floor(dotted: str) -> int | None:
    """The floor of a ``service.x...`` module or file path, None outside service/ (or for the
    package itself)."""
    parts = dotted.split(".")
    if parts[0] != "service" or len(parts) < 2:
        return None
    for floor, names in enumerate(SERVICE_FLOORS):
        if parts[1] in names:
            return floor
    raise AssertionError(f"service.{parts[1]} has no floor in SERVICE_FLOORS: add it")


def module_name(path: Path) -> str:
    relative = path.relative_to(REPO).with_suffix("")
    parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
    return ".".join(parts)


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


def test_service_sub_packages_import_only_downward() -> None:
    wrong = []
    for path in sorted((REPO / "service").rglob("*.py")):
        own = service_floor(module_name(path))
        if own is None:
            continue
        for line, target in imported_modules(path):
            floor = service_floor(target)
            if floor is not None and floor > own:
                wrong.append(f"{path.relative_to(REPO)}:{line} imports {target} (floor {floor})")
    assert not wrong, "imports up service's floors:\n" + "\n".join(wrong)


def test_the_floor_check_places_modules() -> None:
    assert service_floor("service.api.routes.deepl") == len(SERVICE_FLOORS) - 1
    assert service_floor("service.runtime.sessions") == 0
    assert service_floor("service.errors.SourceTooLong") == 1
    assert service_floor("contract.options") is None
    with pytest.raises(AssertionError, match="no floor"):
        service_floor("service.newroom.x")


def test_no_circle_of_module_imports() -> None:
    """Modules of every layer, lazy imports included: a circle would make the order a lie."""
    modules = {module_name(p): p for layer in LAYERS for p in (REPO / layer).rglob("*.py")}
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for _, target in imported_modules(path):
            while target and target not in modules:  # ``from a.b import name`` -> a.b
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                edges[name].add(target)
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if state.get(nxt) == 1:
                return [*path, node, nxt]
            if nxt not in state and (circle := visit(nxt, [*path, node])):
                return circle
        state[node] = 2
        return None

    for module in sorted(modules):
        if module not in state and (circle := visit(module, [])):
            raise AssertionError("import circle: " + " -> ".join(circle))
