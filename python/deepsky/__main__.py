"""python -m deepsky ARGS: runs the deepsky command line tool with ARGS (the wheel's own copy,
else the source tree's build/deepsky, else $DEEPSKY_CLI or the one on PATH)."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import List, Optional


def find_cli() -> Optional[str]:
    env = os.environ.get("DEEPSKY_CLI")
    if env:
        return env
    here = Path(__file__).resolve().parent
    for p in (here / "_libs" / "deepsky", here.parent.parent / "build" / "deepsky"):
        if p.is_file() and os.access(p, os.X_OK):
            return str(p)
    return shutil.which("deepsky")


def main(argv: List[str]) -> int:
    cli = find_cli()
    if not cli:
        print("deepsky: error: the command line tool was not found (no wheel copy, no "
              "build/deepsky, not on PATH); set DEEPSKY_CLI", file=sys.stderr)
        return 127
    env = dict(os.environ)
    libs = Path(cli).parent
    if libs.name == "_libs":   # the wheel's vendored libraries
        env["LD_LIBRARY_PATH"] = os.pathsep.join(filter(None, [str(libs),
                                                               env.get("LD_LIBRARY_PATH")]))
    sys.stdout.flush()
    os.execve(cli, [cli] + argv, env)
    return 0   # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
