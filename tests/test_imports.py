"""Imports point down the data flow: a module imports only from its own package and from the levels
before its own in FLOW. Packages on one level (train and ensemble, say) never import each other."""
import ast
from pathlib import Path

from tests.helpers import REPO

FLOW = [["layout", "benchmark"], ["metric", "log"], ["data"], ["signal"], ["synthetic", "models"], ["train", "ensemble"],
        ["clinical"]]
LEVEL = {package: level for level, packages in enumerate(FLOW) for package in packages}


def hms_imports(path: Path) -> list[tuple[int, str]]:
    """(line, first part after `hms.`) of every import of the hms package in a file, lazy ones too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + ([f"{node.module}.{a.name}" for a in node.names] if node.module == "hms" else [])
        found += [(node.lineno, n.split(".")[1]) for n in names if n.startswith("hms.")]
    return found


def upward_imports(package_root: Path) -> list[str]:
    problems = []
    for path in sorted(package_root.rglob("*.py")):
        relative = path.relative_to(package_root)
        if len(relative.parts) == 1 and relative.name == "__init__.py":
            continue
        own = relative.parts[0].removesuffix(".py")
        if own not in LEVEL:
            problems.append(f"{relative}: package {own!r} has no place in FLOW")
            continue
        for line, target in hms_imports(path):
            if target != own and (target not in LEVEL or LEVEL[target] >= LEVEL[own]):
                problems.append(f"{relative}:{line} imports hms.{target}, which does not come before {own}")
    return problems


def test_no_module_imports_upward():
    assert upward_imports(REPO / "hms") == []


def test_the_check_catches_an_upward_import(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "bad.py").write_text("def f():\n    from hms.train.loop import train\n")
    (tmp_path / "ensemble").mkdir()
    (tmp_path / "ensemble" / "bad.py").write_text("import hms.train.augment\nfrom hms import train\n")
    (tmp_path / "data" / "fine.py").write_text("from hms.layout import CLASSES\nfrom hms.data import kaggle\n")
    assert upward_imports(tmp_path) == [
        "data/bad.py:2 imports hms.train, which does not come before data",
        "ensemble/bad.py:1 imports hms.train, which does not come before ensemble",
        "ensemble/bad.py:2 imports hms.train, which does not come before ensemble",
    ]
