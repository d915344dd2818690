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


def _readme_commands() -> list[str]:
    """Every `oilspill ...` command of the README: in its sh blocks (continuation lines
    joined, comments dropped, also after `pip install ... &&`) and in its text."""
    # In the text, a command with arguments is one to run; `oilspill segment` names one.
    commands = [c for c in re.findall(r"`(oilspill [^`|]+)`", README) if len(c.split()) > 2]
    for block in re.findall(r"```sh\n(.*?)```", README, flags=re.S):
        text = block.replace("\\\n", " ")
        for line in text.splitlines():
            line = line.split(" # ", 1)[0].strip()
            for part in line.split("&&"):
                part = part.strip()
                if part.startswith("oilspill "):
                    commands.append(part)
    return commands


def test_every_oilspill_command_of_the_readme_parses_with_valid_settings() -> None:
    """The commands are not all run here (a model server on box-1, a Sentinel-1 product),
    but each must be one the CLI accepts, with settings the service would start with."""
    import shlex

    from oilspill.cli import REPEATABLE, build_parser
    from oilspill.config import SETTINGS, load_settings

    commands = _readme_commands()
    assert len(commands) >= 8, commands
    names = {s.name for s in SETTINGS}
    for command in commands:
        args = build_parser().parse_args(shlex.split(command)[1:])
        overrides = {k: v for k, v in vars(args).items() if k in names and v is not None}
        for name in REPEATABLE & overrides.keys():
            overrides[name] = ",".join(overrides[name])
        if args.command in ("serve", "ml-serve"):
            load_settings(overrides, environ={}, dotenv=None)  # raises on what would not start
