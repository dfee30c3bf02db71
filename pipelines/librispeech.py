"""LibriSpeech: a DeepSpeech2-style character CTC recogniser, for a machine with GPUs.

    # LibriSpeech unpacked under DATA (openslr.org/12): DATA/LibriSpeech/train-clean-100, ...
    .venv/bin/pip install -e '.[cuda,lm]'
    .venv/bin/python pipelines/librispeech.py --root DATA/LibriSpeech --out runs/librispeech
    .venv/bin/python pipelines/librispeech.py --root DATA/LibriSpeech --train train-clean-100 train-clean-360 \\
        --lm 4-gram.arpa --export saved_models/librispeech

The model: a convolutional front end that subsamples time by 4 (two stride-2
convolutions), five bidirectional GRU layers of 512 units (`--set model.cell=lstm`
for LSTM), a character softmax with the CTC blank; 80 log-mel bands. On GPUs it
trains in mixed precision (float16 compute, float32 CTC) under `MirroredStrategy`
over every visible GPU (`train.distribution=auto`), with clipnorm 5 and SpecAugment.
Re-running the same command resumes. The test sets are scored with beam search
(width 64), with the KenLM model given by `--lm` if any, through the export.
Time per epoch: unmeasured (no GPU was lent to the session that wrote this recipe;
on 2 CPU cores it is not practical). `tests/test_pipelines.py` runs it end to end
on a LibriSpeech-layout fixture with a tiny model.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import tensorflow as tf

from speechseq import corpora, evaluate, export, runfile, train
from speechseq.decoding import BeamOptions
from speechseq.files import write_text
from speechseq.transcribe import TranscriberOptions

DEEPSPEECH2 = [
    "features.n_mels=80",
    "model.cell=gru",
    "model.layers=5",
    "model.units=512",
    "model.subsampling=4",
    "model.conv_channels=256",
    "model.conv_kernel=11",
    "model.dropout=0.1",
    "train.epochs=40",
    "train.batch_size=32",  # per GPU: on 8 GPUs a step takes 256 utterances
    "train.max_batch_frames=48000",
    "train.learning_rate=1e-3",
    "train.warmup_steps=1000",
    "train.clipnorm=5.0",
    "train.early_stopping=5",
    "data.max_seconds=20",
]


def manifest(root: Path, subsets: list[str], out: Path) -> Path:
    """One manifest of the named LibriSpeech subsets (written once)."""
    if not out.exists():
        utterances = [u for subset in subsets for u in corpora.librispeech(root / subset)]
        corpora.write_manifest(utterances, out)
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True, help="the LibriSpeech folder")
    parser.add_argument("--train", nargs="+", default=["train-clean-100"])
    parser.add_argument("--dev", default="dev-clean")
    parser.add_argument("--test", nargs="+", default=["test-clean"])
    parser.add_argument("--out", type=Path, default=Path("runs/librispeech"))
    parser.add_argument("--lm", help="KenLM model (.arpa or .bin) for the beam search")
    parser.add_argument("--beam", type=int, default=64)
    parser.add_argument("--export", type=Path, help="saved_models/NAME to publish the model to")
    parser.add_argument("--set", action="append", default=[], help="run setting, e.g. train.epochs=5")
    args = parser.parse_args(argv)

    folder = args.out / "manifests"
    train_manifest = manifest(args.root, args.train, folder / "train.jsonl")
    dev_manifest = manifest(args.root, [args.dev], folder / "dev.jsonl")
    gpus = tf.config.list_physical_devices("GPU")
    settings = DEEPSPEECH2 + [f"train.mixed_precision={'true' if gpus else 'false'}",
                              f"data.train={train_manifest}", f"data.dev={dev_manifest}"] + args.set
    run = runfile.load(None, settings, args.out)
    started = time.perf_counter()
    train.fit(run)
    results: dict = {"gpus": len(gpus), "training_minutes_this_session": round((time.perf_counter() - started) / 60, 1)}

    exported = export.write_version(export.load_trained(args.out), args.export or args.out / "export")
    options = TranscriberOptions(beam=BeamOptions(beam_width=args.beam, lm=args.lm))
    for subset in args.test:
        utterances = corpora.read_manifest(manifest(args.root, [subset], folder / f"{subset}.jsonl"))
        scores = evaluate.score_export(exported, utterances, options)
        results[subset] = {"wer": round(scores.wer, 4), "cer": round(scores.cer, 4), "utterances": scores.n}
        print(f"{subset}: WER {scores.wer:.2%}, CER {scores.cer:.2%} on {scores.n} utterances")
    write_text(args.out / "results.json", json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
