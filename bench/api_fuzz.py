"""Schemathesis against a real `oilspill serve`: every operation of /openapi.json, fuzzed.

    pip install schemathesis && python bench/api_fuzz.py            # 50 examples per operation
    python bench/api_fuzz.py --max-examples 500

Runs every schemathesis check but `positive_data_acceptance` (ST202): a schema-valid
multipart body is not a zip of images, and a 400 that says so is the right answer. Any
other failure (a 5xx, a response unlike its schema, a wrong status for a bad request, a
405 without its Allow) is printed and makes the exit status 1. schemathesis is not a
dependency of oilspill (it pulls a large tree): install it to run this.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from _common import finish, make_parser, say, session, start_service


def main() -> int:
    parser = make_parser(__doc__)
    parser.add_argument("--max-examples", type=int, default=50, help="per operation")
    parser.add_argument("--timeout", type=float, default=900, help="seconds for the whole run")
    args = parser.parse_args()
    binary = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")
    if not Path(binary).exists():
        say("schemathesis is not installed: pip install schemathesis")
        return 2
    with session("schemathesis against /openapi.json") as run:
        server = start_service("api", run.work, "--workers", "2")
        run.stack.callback(server.stop)
        cmd = [binary, "run", f"{server.url}/openapi.json", "--checks", "all",
               "--exclude-checks", "positive_data_acceptance",
               "--max-examples", str(args.max_examples), "--request-timeout", "30",
               "--seed", "1"]  # fmt: skip
        say("$ " + " ".join(cmd))
        done = subprocess.run(cmd, timeout=args.timeout, capture_output=True, text=True)
        lines = done.stdout.splitlines()
        start = next((i for i, line in enumerate(lines) if "SUMMARY" in line), 0)
        say("\n".join(lines[start:]) or done.stdout[-4000:])
        errors = [line for line in server.log_tail(400).splitlines() if "Traceback" in line]
        say(f"server log: {len(errors)} tracebacks; schemathesis exit status {done.returncode}")
        finish(run, [], __file__, parser, args)
    return 0 if done.returncode == 0 and not errors else 1


if __name__ == "__main__":
    sys.exit(main())
