"""The README's examples run as written: the library example and the curl session."""

from __future__ import annotations

import re
from pathlib import Path

README = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")


def test_the_library_example_runs() -> None:
    first = re.findall(r"```python\n(.*?)```", README, flags=re.S)[0]
    exec(compile(first, "README.md", "exec"), {})


def test_the_curl_session_runs_against_a_real_server(tmp_path: Path) -> None:
    """Each command of "A session with curl", as written, against `oilspill serve` on a free
    port; the placeholders (…) become the ids the upload answered, and answers match the
    shapes the README shows."""
    import json
    import shutil
    import subprocess
    import sys
    import time
    import zipfile

    import pytest
    from helpers import Server

    if shutil.which("curl") is None:  # .ci/run installs it; a bare machine may not have it
        pytest.skip("curl is not installed")
    block = README.split("## A session with curl", 1)[1].split("```sh\n", 1)[1].split("```")[0]
    commands = [line for line in block.splitlines() if line and not line.startswith("#")]
    server = Server(tmp_path / "data")
    try:
        ids: dict[str, str] = {}
        for command in commands:
            command = command.replace("http://127.0.0.1:8000", server.url)
            command = command.replace("3f0c…", ids.get("job_id", "")).replace(
                "9a41…", ids.get("user_hash", "")
            )
            if command.startswith("oilspill "):
                command = f"{sys.executable} -m {command}"
            if "/api/status/" in command:  # the README shows the finished answer: wait for it
                for _ in range(300):
                    out = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True)
                    if json.loads(out.stdout)["status"] in ("SUCCESS", "FAILURE"):
                        break
                    time.sleep(0.1)
            out = subprocess.run(command, shell=True, cwd=tmp_path, capture_output=True, timeout=60)
            assert out.returncode == 0, (command, out.stderr)
            if "/api/upload" in command:
                answer = json.loads(out.stdout)
                assert answer["status"] == "processing"
                ids = {"job_id": answer["job_id"], "user_hash": answer["user_hash"]}
            elif "/api/status/" in command:
                status = json.loads(out.stdout)
                assert status["status"] == "SUCCESS" and status["total"] == 5
            elif "archive_time_left" in command:
                assert 0 < json.loads(out.stdout)["seconds_left"] <= 600
        assert len(zipfile.ZipFile(tmp_path / "result.zip").namelist()) > 5
    finally:
        server.stop()
