"""Training curves of one or more runs, drawn from each run directory's log.csv.

    .venv/bin/python benchmarks/curves.py runs/digits-shipped runs/english-read \
        --out benchmarks/training_curves.png

One PNG: loss and val_loss per epoch (log scale), and val_wer / val_cer on a second
panel when the runs logged them (CTC runs do), the best WER of each run marked. A run
still training can be drawn: a half-written last line is skipped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from speechseq import plots


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories, each with a log.csv")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "training_curves.png",
                        help="PNG to write")
    args = parser.parse_args()
    try:
        target = plots.training_curves(args.runs, args.out)
    except (OSError, ValueError) as error:
        print(f"curves: error: {error}", file=sys.stderr)
        return 2
    print(f"drew {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
