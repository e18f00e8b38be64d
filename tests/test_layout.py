"""The layout of the code, read from its own source: imports run one way, from a stage down to the stages
below it (docs/architecture.md), and no function grows past a screen."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CORE = REPO / "painter_models"
# painter_models' stages, lowest first: a module may import its own stage and the ones before it
STAGES = ["", "brush", "painter", "objectives", "painting", "export", "cli"]
MAX_FUNCTION_LINES = 80


def stage_of(module: str) -> str:
    """The stage of a dotted module name inside painter_models ('' for the base modules at its top). The
    package itself is its public face: it gathers names from every stage, as the last one."""
    parts = module.split(".")
    assert parts[0] == "painter_models", module
    if len(parts) == 1:
        return STAGES[-1]
    return parts[1] if parts[1] in STAGES else ""


def module_name(path: Path, root: Path = CORE) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imported_modules(path: Path, root: Path = CORE) -> list[tuple[int, str]]:
    """(line, absolute module) of every import in a file of painter_models, lazy ones inside functions too."""
    name = module_name(path, root)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            # `from . import x` names modules: judge each one
            if not node.module:
                found += [(node.lineno, f"{target}.{a.name}") for a in node.names]
            else:
                found.append((node.lineno, target))
    return found


def upward_imports(root: Path = CORE) -> list[str]:
    wrong = []
    for path in sorted(root.rglob("*.py")):
        where, stage = path.relative_to(root.parent), stage_of(module_name(path, root))
        for line, target in imported_modules(path, root):
            top = target.split(".")[0]
            if top in ("nodes", "neural_painters_training", "training", "comfy", "folder_paths"):
                wrong.append(f"{where}:{line} imports {target}: the core imports no node, training script or ComfyUI")
            elif top == "painter_models" and STAGES.index(stage_of(target)) > STAGES.index(stage):
                wrong.append(f"{where}:{line} ({stage or 'base'}) imports {target} ({stage_of(target)}), a later stage")
    return wrong


def test_imports_run_from_a_stage_down_to_the_stages_below_it():
    assert upward_imports() == []


def test_the_import_check_sees_an_upward_import(tmp_path):
    """The check above would go red on a lower stage importing a higher one, lazily or not."""
    fake = tmp_path / "painter_models"
    for stage in ("brush", "painting"):
        (fake / stage).mkdir(parents=True)
        (fake / stage / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / "brush" / "strokes.py").write_text("def f():\n    from ..painting import canvas\n")
    (fake / "painting" / "canvas.py").write_text("from ..brush import strokes\n")
    wrong = upward_imports(fake)
    assert len(wrong) == 1 and "brush/strokes.py:2" in wrong[0] and "imports painter_models.painting " in wrong[0]


def test_every_stage_says_what_it_owns():
    for stage in STAGES[1:]:
        doc = ast.get_docstring(ast.parse((CORE / stage / "__init__.py").read_text()))
        assert doc and "May import" in doc, f"painter_models/{stage}/__init__.py: say what it owns and may import"


def long_functions(folders=("painter_models", "nodes", "training")) -> list[str]:
    found = []
    for folder in folders:
        for path in sorted((REPO / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    length = node.end_lineno - node.lineno + 1
                    if length > MAX_FUNCTION_LINES:
                        found.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({length} lines)")
    return found


@pytest.mark.parametrize("folder", ["painter_models", "nodes", "training"])
def test_no_function_is_longer_than_a_screen(folder):
    assert long_functions((folder,)) == []
