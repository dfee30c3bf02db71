"""Entry point of the `speechseq` console script and of `python -m speechseq`."""

import os
import sys

# TensorFlow's C++ start-up chatter (oneDNN, CUDA probing) is noise on a command line.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> int:
    from speechseq.cli import main as run

    return run()


if __name__ == "__main__":
    sys.exit(main())
