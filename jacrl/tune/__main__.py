"""``python -m jacrl.tune``: the same command as ``jacrl tune``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jacrl.common.errors import JacrlError
from jacrl.tune.cli import add_arguments, run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jacrl.tune")
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except JacrlError as exc:
        print(f"jacrl: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
