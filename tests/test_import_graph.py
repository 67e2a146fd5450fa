"""The package's import graph: imports follow the data flow, never against it, and never in a circle.

Every import counts, at module level or inside a function: a lazy import that runs against the flow
still ties the two stages together. Read from the source with ``ast``; nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("fsmi_bench", "baselines", "flexedit_model")

# fsmi_bench's stages in the order of the data flow: a module may import its own stage and the ones before.
STAGES = ("shared", "benchmark", "run", "metrics", "scoring", "report", "quickstart", "api", "cli")
# The one edge against the flow: the package's ``__getattr__`` hands out the Python API on first use
# (``fsmi_bench.load_benchmark``); never at import time (test_the_front_door_imports_the_api_lazily).
FRONT_DOOR = ("fsmi_bench", "fsmi_bench.api")
SHARED = {"fsmi_bench", "fsmi_bench.schema", "fsmi_bench.io", "fsmi_bench.errors", "fsmi_bench.registry",
          "fsmi_bench.provenance", "fsmi_bench.workers"}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "drivers" not in path.parts:  # drivers run in the user's own environment, apart from ours
                modules[_module_name(path)] = path
    return modules


def import_graph() -> dict[str, set[str]]:
    """module -> the project's modules it imports (anywhere in its body)."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        targets = set()
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                candidates = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
                # ``from package import module`` imports the module, not only the package.
                candidates = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                              for alias in node.names]
            else:
                continue
            for candidate in candidates:
                while candidate and candidate not in modules:
                    candidate = candidate.rpartition(".")[0]
                if candidate and candidate != name:
                    targets.add(candidate)
        graph[name] = targets
    graph["fsmi_bench"].discard(FRONT_DOOR[1])
    return graph


def stage(module: str) -> str:
    if module in SHARED:
        return "shared"
    return module.split(".")[1]


def test_no_import_circle():
    graph = import_graph()
    visiting, done, circles = [], set(), []

    def visit(module):
        if module in done:
            return
        if module in visiting:
            circles.append(visiting[visiting.index(module):] + [module])
            return
        visiting.append(module)
        for target in sorted(graph[module]):
            visit(target)
        visiting.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)
    assert not circles, "import circles: " + "; ".join(" -> ".join(circle) for circle in circles)


def test_fsmi_bench_imports_follow_the_data_flow():
    graph = import_graph()
    assert {stage(module) for module in graph if module.startswith("fsmi_bench")} <= set(STAGES)
    against = [f"{module} -> {target}" for module, targets in graph.items() if module.startswith("fsmi_bench")
               for target in targets
               if not target.startswith("fsmi_bench") or STAGES.index(stage(target)) > STAGES.index(stage(module))]
    assert not against, "imports against the flow (or of baselines/flexedit_model): " + ", ".join(sorted(against))


def test_flexedit_model_and_baselines_stay_on_their_side():
    graph = import_graph()
    # The model never imports the adapters; neither imports the scoring or reporting stages.
    for module, targets in graph.items():
        if module.startswith("flexedit_model"):
            assert not any(target.startswith("baselines") for target in targets), module
        if not module.startswith("fsmi_bench"):
            late = [t for t in targets if t.startswith("fsmi_bench") and stage(t) in ("scoring", "report", "cli")]
            assert not late, f"{module} imports {late}"


def test_the_graph_sees_lazy_and_relative_imports(tmp_path):
    # The reader itself: a function-level import is an edge, as is ``from package import module``.
    graph = import_graph()
    assert "fsmi_bench.benchmark.builder" in graph["fsmi_bench.cli.build"]  # imported inside the command
    assert "fsmi_bench.metrics.pixel" in graph["fsmi_bench.scoring.scorer"]  # from fsmi_bench.metrics import pixel


def test_the_front_door_imports_the_api_lazily():
    # The edge left out of the graph above exists only inside a function of fsmi_bench/__init__.py.
    tree = ast.parse((ROOT / "fsmi_bench" / "__init__.py").read_text(encoding="utf-8"))
    top_level = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert not any("api" in ast.dump(node) for node in top_level)
    inside = [node for function in tree.body if isinstance(function, ast.FunctionDef)
              for node in ast.walk(function) if isinstance(node, ast.ImportFrom)]
    assert [function.name for function in tree.body if isinstance(function, ast.FunctionDef)
            and any(isinstance(node, ast.ImportFrom) for node in ast.walk(function))] == ["__getattr__"]
    assert any(alias.name == "api" for node in inside for alias in node.names)
