"""Run a command with N CPU-bound processes beside it (`make test-under-load`).

The burners are plain Python loops at normal priority, one per core by default, so the command
competes for the CPU as it would on a busy laptop or a shared CI runner. Each burner ends by
itself after --max-s seconds even if this script is killed; all are stopped when the command
ends. The exit code is the command's.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time

BURN = "import time\nend = time.monotonic() + {max_s}\nwhile time.monotonic() < end:\n    pass\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burners", type=int, default=2, help="CPU-bound processes (default 2)")
    parser.add_argument("--max-s", type=float, default=1800.0,
                        help="each burner stops by itself after this many seconds (default 1800)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command to run")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command to run after --")
    if not 0 <= args.burners <= 64 or args.max_s <= 0:
        parser.error("--burners must be 0..64 and --max-s > 0")
    burners = [subprocess.Popen([sys.executable, "-c", BURN.format(max_s=args.max_s)])
               for _ in range(args.burners)]
    started = time.monotonic()
    print(f"under load: {args.burners} CPU burners (pids {[b.pid for b in burners]}), "
          f"each stops by itself after {args.max_s:g} s", flush=True)
    try:
        code = subprocess.call(command)
    finally:
        for b in burners:
            b.kill()
        for b in burners:
            b.wait(timeout=10)
    print(f"under load: command exited {code} after {time.monotonic() - started:.0f} s; "
          f"burners stopped", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
