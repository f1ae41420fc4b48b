"""The project's shape: imports flow one way, and entry points set up torch before importing it.

The floors, top to bottom (a module may import from its own floor or any floor below):

    7  entry points: chat.py, compare.py,     what you run; also every module with
       bench.py, deploy.py                    `if __name__ == "__main__":` (training/train.py, ...)
    6  plugins/                               optional callbacks; the training entry point loads
                                              them and hands them to the run
    5  training/, evaluation/, exporters/,    the jobs; training and evaluation never import
       importers/, dashboard/                 each other
    4  runtime/                               what both jobs need: device, checkpoints, metrics
    3  models/, data/                         the model (and its sizes); token ids: prepared
                                              splits, batches, the objectives' batch makers
    2  tokenizer/                             trains on the raw text, encodes it
    1  corpus/                                the raw text: data/raw, or the built-in stories
    0  config.py, errors.py, torch_env.py,    the ground everything stands on
       project_lock.py

If you add a package, give it a floor in FLOORS. This test reads the code with `ast`: nothing is
imported or run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
ENTRY = 7  # the floor of every entry point, wherever its file is
FLOORS = {
    "errors": 0, "config": 0, "torch_env": 0, "project_lock": 0,
    "corpus": 1,
    "tokenizer": 2,
    "models": 3, "data": 3,
    "runtime": 4,
    "training": 5, "evaluation": 5, "exporters": 5, "importers": 5, "dashboard": 5,
    "plugins": 6,
    "chat": ENTRY, "compare": ENTRY, "bench": ENTRY, "deploy": ENTRY,
}
NEVER_EACH_OTHER = {"training", "evaluation"}


def project_modules() -> dict[str, Path]:
    """'training.trainer' -> its file, for every Python file outside tests/."""
    modules = {}
    for path in sorted(PROJECT.rglob("*.py")):
        relative = path.relative_to(PROJECT)
        if relative.parts[0] in ("tests", ".venv") or relative.parts[0] not in FLOORS \
                and relative.stem not in FLOORS:
            continue
        parts = relative.with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def imports_of(path: Path, known: set[str]) -> list[tuple[str, int]]:
    """The project modules a file imports (at any depth: lazy imports count too)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from runtime import checkpoints` imports the module runtime.checkpoints.
            names = [f"{node.module}.{alias.name}" if f"{node.module}.{alias.name}" in known
                     else node.module for alias in node.names]
        found += [(name, node.lineno) for name in names if name.split(".")[0] in FLOORS]
    return found


MODULES = project_modules()
GRAPH = {name: imports_of(path, set(MODULES)) for name, path in MODULES.items()}
IMPORTED = {imported for imports in GRAPH.values() for imported, _ in imports}


def test_every_module_has_a_floor() -> None:
    architecture = next(name for name in ("gpt", "bert", "t5")
                        if f"models.architectures.{name}" in MODULES)  # the project's one
    assert {"config", "training.trainer", "runtime.checkpoints", "runtime.objectives",
            f"models.architectures.{architecture}", "deploy"} <= set(MODULES)
    for name in MODULES:
        assert name.split(".")[0] in FLOORS, f"{name}: give its package a floor in FLOORS"


def floor(module: str) -> int:
    """A module's package's floor (also for a module of another architecture, which create-llm
    left out of this project); the top for an entry point that nothing imports (a module you
    run, such as training/train.py, uses the floors below it like chat.py does)."""
    if module in MODULES and is_entry_point(MODULES[module]) and module not in IMPORTED:
        return ENTRY
    return FLOORS[module.split(".")[0]]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_only_go_down(module: str) -> None:
    top = module.split(".")[0]
    for imported, line in GRAPH[module]:
        target = imported.split(".")[0]
        where = f"{MODULES[module].relative_to(PROJECT)}:{line} imports {imported}"
        assert floor(imported) <= floor(module), f"upward import: {where}"
        assert not ({top, target} == NEVER_EACH_OTHER), f"training <-> evaluation: {where}"


def test_no_import_cycles() -> None:
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(name):] + [name]))
        if name in done or name not in GRAPH:
            return
        for imported, _ in GRAPH[name]:
            visit(imported, [*path, name])
        done.add(name)

    for name in GRAPH:
        visit(name, [])


def imports_torch(name: str, seen: set[str] | None = None) -> bool:
    """Whether importing this module loads torch (directly or through project modules)."""
    seen = seen if seen is not None else set()
    if name in seen or name not in MODULES:
        return False
    seen.add(name)
    tree = ast.parse(MODULES[name].read_text(encoding="utf-8"))
    direct = any(isinstance(node, ast.Import) and any(a.name.split(".")[0] == "torch"
                                                      for a in node.names)
                 or isinstance(node, ast.ImportFrom) and (node.module or "").startswith("torch")
                 for node in tree.body)
    return direct or any(imports_torch(imported, seen) for imported, _ in GRAPH[name])


def is_entry_point(path: Path) -> bool:
    """Whether the file runs something as a script: a top-level `if __name__ == "__main__":`."""
    return any(isinstance(node, ast.If) and isinstance(node.test, ast.Compare)
               and isinstance(node.test.left, ast.Name) and node.test.left.id == "__name__"
               for node in ast.parse(path.read_text(encoding="utf-8")).body)


ENTRY_POINTS = sorted(name for name, path in MODULES.items() if is_entry_point(path))


@pytest.mark.parametrize("module", ENTRY_POINTS)
def test_entry_points_that_use_torch_import_torch_env_first(module: str) -> None:
    """torch_env.py's settings only work before torch is loaded (see that file)."""
    if not imports_torch(module):
        return
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))
               and not (isinstance(node, ast.ImportFrom) and node.module == "__future__")]
    first = imports[0]
    assert isinstance(first, ast.Import) and first.names[0].name == "torch_env", (
        f"{MODULES[module].relative_to(PROJECT)}: put `import torch_env` above its other imports")
