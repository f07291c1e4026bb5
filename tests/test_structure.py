"""The layout docs/architecture.md describes, checked on the source: rlcl's import graph has no
cycles, nothing imports the entry point rlcl.train (the public regression helper rlcl.testing
trains through it, late), only the device modules (device.py, device_choice.py, kernel_args.py)
import pyopencl and only logger.py tensorboardX, and
config.py does not pull in gymnasium (issue 10)."""

import ast
from pathlib import Path

import rlcl

PACKAGE = Path(rlcl.__file__).parent


def imports() -> dict[str, set[str]]:
    """module -> the modules it imports (top-level and late imports alike)."""
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(("rlcl", *path.relative_to(PACKAGE).with_suffix("").parts))
        name = name.removesuffix(".__init__")
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
        graph[name] = found
    return graph


def test_no_import_cycles_among_rlcl_modules():
    graph = {m: {d for d in deps if d in imports_ and d != m}
             for imports_ in [imports()] for m, deps in imports_.items()}
    done, path = set(), []

    def visit(module):
        assert module not in path, "import cycle: " + " -> ".join([*path, module])
        if module in done:
            return
        path.append(module)
        for dep in sorted(graph[module]):
            visit(dep)
        path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


def test_only_entry_points_import_train_and_one_module_per_library():
    graph = imports()
    importers = lambda lib: sorted(m for m, deps in graph.items()  # noqa: E731
                                   if any(d == lib or d.startswith(lib + ".") for d in deps))
    assert importers("rlcl.train") == ["rlcl.testing"]
    assert importers("pyopencl") == ["rlcl.device", "rlcl.device_choice", "rlcl.kernel_args"]
    assert importers("tensorboardX") == ["rlcl.logger"]
    assert importers("optuna") == ["rlcl.tune"]  # an optional extra: rlcl.train never needs it
    assert "rlcl.envs" not in graph["rlcl.config"] and "gymnasium" not in graph["rlcl.config"]
