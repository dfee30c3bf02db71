"""`speechseq train` and `finetune`: runs that resume when the same command is run again."""

from __future__ import annotations

import sys
from pathlib import Path

def add_train(commands) -> None:
    train = commands.add_parser("train", help="train a model (re-run the same command to resume)")
    train.add_argument("--config", type=Path, help="run file (TOML or JSON): [data] [features] [model] [train]")
    train.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE",
                       help="override one setting, e.g. --set train.epochs=5 (repeatable)")
    train.add_argument("--out", type=Path, required=True, help="run directory")
    train.set_defaults(run=cmd_train)


def cmd_train(args) -> int:
    """Train a model from a run file; re-running the same command resumes."""
    from speechseq import distribution, runfile, train

    run = runfile.load(args.config, args.set or [], args.out)
    try:
        train.fit(run, strategy=distribution.choose_strategy(run.train.distribution))
    except KeyboardInterrupt:
        print(f"\ninterrupted: run the same command again to resume from {args.out}/backup", file=sys.stderr)
        return 130
    print(f"model: {args.out}/model.keras" + (f", best: {args.out}/best.keras" if run.data.dev else ""))
    return 0


def add_finetune(commands) -> None:
    finetune = commands.add_parser("finetune", help="adapt a trained model to new recordings")
    finetune.add_argument("--from", dest="source", type=Path, required=True,
                          help="run directory, .keras file or saved_models/NAME[/VERSION]")
    finetune.add_argument("--manifest", type=Path, required=True, help="the new recordings (JSON Lines)")
    finetune.add_argument("--out", type=Path, required=True, help="run directory (re-run to resume)")
    finetune.add_argument("--dev", type=Path, help="held-out new recordings: best model, early stopping")
    finetune.add_argument("--test", action="append", metavar="NAME=MANIFEST",
                          help="a test set for the before/after table (repeatable); default: --dev")
    finetune.add_argument("--freeze", default="", help="layers kept fixed: names, 'encoder' or 'encoder:N'")
    finetune.add_argument("--lr", type=float, default=3e-4, help="peak learning rate")
    finetune.add_argument("--epochs", type=int, default=10)
    finetune.add_argument("--steps", type=int, default=0, help="optimizer steps in all (default: epochs x data)")
    finetune.add_argument("--batch-size", type=int, default=8)
    finetune.add_argument("--vocabulary", type=Path, help="a new vocabulary JSON (shared characters keep their rows)")
    finetune.add_argument("--replay", type=Path, help="old training manifest mixed in against forgetting")
    finetune.add_argument("--replay-ratio", type=float, default=0.0, help="old utterances per new one")
    finetune.add_argument("--early-stopping", type=int, default=0, help="patience in epochs on dev WER; 0 = off")
    finetune.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="any other run setting")
    finetune.set_defaults(run=cmd_finetune)


def cmd_finetune(args) -> int:
    """Fine-tune a model on new recordings; print and save the before/after table."""
    from speechseq import distribution, finetune

    options = finetune.FinetuneOptions(
        source=str(args.source), manifest=str(args.manifest), dev=str(args.dev or ""),
        vocabulary=str(args.vocabulary or ""), freeze=args.freeze, learning_rate=args.lr,
        epochs=args.epochs, steps=args.steps, batch_size=args.batch_size, replay=str(args.replay or ""),
        replay_ratio=args.replay_ratio, early_stopping=args.early_stopping,
    )
    run = finetune.make_run(options, args.out, args.set or [])
    strategy = distribution.choose_strategy(run.train.distribution)
    try:
        finetune.fit(run, strategy=strategy)
    except KeyboardInterrupt:
        print(f"\ninterrupted: run the same command again to resume from {args.out}/backup", file=sys.stderr)
        return 130
    if not distribution.Placement.of(strategy).chief:  # the chief reports, for all workers
        return 0
    test_sets = dict(item.split("=", 1) for item in args.test or [])
    if args.dev and not test_sets:
        test_sets = {"new speaker (dev)": str(args.dev)}
    if test_sets:
        print(finetune.format_report(finetune.before_and_after(args.source, args.out, test_sets)))
        print(f"report: {args.out}/report.json")
    print(f"model: {args.out}/model.keras; export it with: speechseq export {args.out} --out saved_models/NAME")
    return 0


def add_commands(commands) -> None:
    add_train(commands)
    add_finetune(commands)
