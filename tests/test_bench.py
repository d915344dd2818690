"""Every bench script the READMEs quote starts and describes itself (`--help`).

The benchmarks themselves are slow by design and are not run here; this keeps each
of them importable and runnable with what `pip install '.[test]'` brings.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if not p.name.startswith("_"))
NEEDS = {"api_fuzz.py": "schemathesis"}  # optional tools a script documents it needs


@pytest.mark.parametrize("script", SCRIPTS)
def test_the_bench_script_starts(script: str) -> None:
    needed = NEEDS.get(script)
    if needed and importlib.util.find_spec(needed) is None:
        pytest.skip(f"{script} needs {needed} (pip install {needed})")
    out = subprocess.run(
        [sys.executable, str(BENCH / script), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=BENCH.parent,
    )
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout
    assert script in (BENCH / "README.md").read_text(encoding="utf-8"), "not in bench/README"
