"""The README's library example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


def test_the_library_example_runs() -> None:
    first = re.findall(r"```python\n(.*?)```", README, flags=re.S)[0]
    exec(compile(first, "README.md", "exec"), {})
