"""The package layout is the architecture: the margin math (offchain.margin) stands alone, the analytics
(offchain.risk) and the keeper stand on it, and no two modules import each other, directly or through others (imports
inside functions included: a circle there is a circle too)."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "offchain"


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """offchain module -> the offchain modules it imports (anywhere in its body)."""
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        out = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            out |= {t for t in targets if t in modules and t != name and not name.startswith(t + ".")}
        graph[name] = {t for t in out if t != package or path.name != "__init__.py"}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (found := visit(m)):
                return found
        state[n] = 2
        stack.pop()
        return None

    for n in sorted(graph):
        if n not in state and (found := visit(n)):
            return found
    return None


def test_no_import_circles():
    graph = _imports()
    assert len(graph) > 20, "the walk found too few modules to mean anything"
    assert _cycle(graph) is None, f"import circle: {' -> '.join(_cycle(graph))}"


def test_a_circle_is_seen():
    """The check itself can fail: a graph with a circle is reported."""
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_margin_math_stands_alone():
    """offchain.margin imports nothing of offchain outside itself (the keeper, indexer and analytics stand on it)."""
    graph = _imports()
    outside = {(n, m) for n, ms in graph.items() if n.startswith("offchain.margin") for m in ms
               if not m.startswith("offchain.margin")}
    assert not outside, f"offchain.margin imports outside itself: {sorted(outside)}"
    assert any(m.startswith("offchain.margin") for m in graph["offchain.keeper.keeper"])
