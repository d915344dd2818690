"""The house rules: wings import one way (server, mlserve -> backends -> sar; all -> io)."""

from __future__ import annotations

import ast
from pathlib import Path

import oilspill

ROOT = Path(oilspill.__file__).parent
# What each wing may import from the package, besides itself and the top-level config/errors.
ALLOWED = {
    "io": {"io"},
    "sar": {"sar", "io"},
    "backends": {"backends", "sar", "io"},
    "server": {"server", "backends", "sar", "io"},
    # The model service: an in-process backend behind the server's upload receiver.
    "mlserve": {"mlserve", "backends", "sar", "io", "server"},
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return {n for n in names if n.startswith("oilspill.")}


def _wing(module: str) -> str:
    return module.split(".")[1]


def test_wings_import_one_way() -> None:
    bad = []
    for wing, allowed in ALLOWED.items():
        for path in sorted((ROOT / wing).glob("*.py")):
            for name in _imports(path):
                target = _wing(name)
                top_level = target in {"config", "errors", "__version__"}
                if (ROOT / target).is_dir() and target not in allowed and not top_level:
                    bad.append(f"{wing}/{path.name} imports {name}")
    assert not bad, bad


def test_no_module_imports_the_cli() -> None:
    users = [p for p in ROOT.rglob("*.py") if "oilspill.cli" in _imports(p)]
    assert [p.name for p in users] == ["__main__.py"]
