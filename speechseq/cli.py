"""The `speechseq` command: one console script, one subcommand per job."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys

from speechseq import cli_data, cli_export, cli_files, cli_training
from speechseq.errors import SpeechseqError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="speechseq", description=__doc__)
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error in your input too, not only its one-line message")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="let TensorFlow print its start-up lines (CUDA probing, CPU features)")
    commands = parser.add_subparsers(dest="command", required=True)
    for group in (cli_data, cli_training, cli_export, cli_files):  # each command's arguments beside its handler
        group.add_commands(commands)
    return parser


class _Warnings(logging.Handler):
    """speechseq's logged warnings (a truncated file, a skipped entry) on stderr, one line
    each, prefixed with the command; written to the `sys.stderr` of the moment."""

    def __init__(self, prefix: str):
        super().__init__(logging.WARNING)
        self.prefix = prefix

    def emit(self, record: logging.LogRecord) -> None:
        print(self.prefix + record.getMessage(), file=sys.stderr)


def _print_warnings_as(prefix: str) -> None:
    logger = logging.getLogger("speechseq")
    for handler in [h for h in logger.handlers if isinstance(h, _Warnings)]:
        logger.removeHandler(handler)
    logger.addHandler(_Warnings(prefix))


# Commands that never load TensorFlow: they need no quiet start.
WITHOUT_TENSORFLOW = {"manifest"}
# Commands that load an export and run it on the files given, in this process only.
RUN_EXPORTS_ONCE = {"transcribe", "tag"}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _print_warnings_as(f"speechseq {args.command}: warning: ")
    quiet = args.command not in WITHOUT_TENSORFLOW and not args.verbose
    if quiet:
        from speechseq.startup import quiet_tensorflow
    with quiet_tensorflow() if quiet else contextlib.nullcontext():
        if args.command in RUN_EXPORTS_ONCE:
            from speechseq.startup import skip_graph_optimization

            skip_graph_optimization()
        return _run(args)


def _run(args) -> int:
    try:
        return args.run(args)
    # What is wrong with the user's input or paths, in one line; anything else is a bug in
    # speechseq and keeps its traceback.
    except (SpeechseqError, OSError) as error:
        if args.debug:
            raise
        print(f"speechseq {args.command}: error: {error}", file=sys.stderr)
        return 2
