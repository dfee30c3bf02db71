"""The GPU paths, checked and timed in one short run: cuDNN kernels, mixed precision, several GPUs.

    .venv/bin/python benchmarks/gpu.py [--steps 20] [--seconds 5] [--results FILE]
    .venv/bin/python benchmarks/gpu.py --cpu --steps 1 --set model.units=16   # the same logic on the CPU

It needs nothing from ../shared (the tree that travels to a lent GPU machine is small):
the models train on random 80-mel features, as benchmarks/train_speed.py's. It reports
1. whether the cuDNN GRU and LSTM kernels run: a layer built with `use_cudnn=True` raises
   where Keras would fall back to its generic loop; it is called on right-padded masked
   batches, as speechseq's encoders are;
2. training steps/s of the English recipe's model (pipelines/english.py's DEFAULTS) as
   speechseq builds it (cuDNN where it applies), beside the generic loop (a recurrent
   dropout of 1e-6 rules cuDNN out), with mixed precision, and mirrored over every visible
   GPU (per-replica batch as set, so the global batch grows with the GPUs).
Variants are timed in turn, twice round, best pass kept; the ratios to the first row are
the figures to read. With `--cpu` the GPUs are hidden and the CPU stands in (two logical
CPU devices for the mirrored row): a check that the script works, not figures to report.
Should finish in under 8 minutes on one GPU.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if "--cpu" in sys.argv:
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before TensorFlow loads

import tensorflow as tf  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "pipelines"))

from english import DEFAULTS  # noqa: E402
from features import RESULTS, machine  # noqa: E402
from train_speed import batches, timed_pass  # noqa: E402

from speechseq.benchmark import append_section  # noqa: E402


def split_cpu_when_asked(cpu: bool) -> None:
    """Two logical CPU devices stand in for two GPUs (must happen before TensorFlow starts)."""
    if cpu:
        device = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(device, [tf.config.LogicalDeviceConfiguration()] * 2)


def cudnn_check(cell: str) -> str:
    """'runs' when Keras' cuDNN kernel for `cell` trains a masked batch, else why not."""
    import keras

    if not tf.config.list_logical_devices("GPU"):
        return "not checked: no GPU"
    layer_type = keras.layers.GRU if cell == "gru" else keras.layers.LSTM
    layer = layer_type(32, use_cudnn=True, return_sequences=True)
    inputs = tf.random.normal((4, 50, 16))
    mask = tf.sequence_mask([50, 40, 30, 20], 50)  # right-padded, as speechseq's batches

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(inputs, mask=mask, training=True))
        return tape.gradient(loss, layer.trainable_variables)

    try:
        step()
    except (ValueError, NotImplementedError, tf.errors.OpError) as error:
        return f"does not run: {' '.join(str(error).split())[:200]}"
    return "runs"


def variants(gpus: int) -> dict[str, tuple[list[str], bool]]:
    """name -> (settings on top of the recipe's DEFAULTS, mirrored over every device)."""
    table = {
        "recipe model (cuDNN where it applies)": (["train.jit_compile=false"], False),
        "generic recurrent loop (no cuDNN)": (["train.jit_compile=false", "model.recurrent_dropout=0.000001"], False),
        "mixed precision": (["train.jit_compile=false", "train.mixed_precision=true"], False),
    }
    if gpus > 1:
        table[f"mirrored over {gpus} devices"] = (["train.jit_compile=false"], True)
    return table


def build(settings: list[str], mirrored: bool, frames: int, extra: list[str]):
    from speechseq import losses, models, runfile, train
    from speechseq.text import Vocabulary

    vocabulary = Vocabulary(digits_as_words=True)
    run = runfile.load(None, DEFAULTS + ["data.train=unused.jsonl"] + extra + settings, "unused")
    devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
    strategy = (tf.distribute.MirroredStrategy([d.name for d in devices]) if mirrored
                else tf.distribute.get_strategy())
    replicas = strategy.num_replicas_in_sync
    with strategy.scope():
        dtype = "mixed_float16" if run.train.mixed_precision else "float32"
        model = models.ctc_model(run.features.feature_dim, vocabulary.size, run.encoder, dtype)
        model.compile(optimizer=train.optimizer(run.train, 10_000), loss=losses.CTCLoss(), jit_compile=False)
    # batch_size is per replica: the mirrored model's batches hold batch_size x replicas.
    data = batches(run.train.batch_size * replicas, frames, run.features.feature_dim, vocabulary.size,
                   run.encoder.subsampling, 4)
    return model, data, run.train.batch_size * replicas


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per pass")
    parser.add_argument("--seconds", type=float, default=5.0, help="audio seconds per utterance")
    parser.add_argument("--cpu", action="store_true", help="hide the GPUs: check the script on the CPU")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="a setting on top of the recipe's for every variant (a smaller model for a quick check)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="markdown file the section is appended to")
    args = parser.parse_args()
    split_cpu_when_asked(args.cpu)

    gpus = tf.config.list_logical_devices("GPU")
    devices = len(gpus) if gpus else (2 if args.cpu else 1)
    checks = {cell: cudnn_check(cell) for cell in ("gru", "lstm")}
    for cell, verdict in checks.items():
        print(f"cuDNN {cell.upper()} kernel: {verdict}", flush=True)
    frames = int(args.seconds * 100)
    prepared = {}
    for name, (settings, mirrored) in variants(devices).items():
        model, data, batch = build(settings, mirrored, frames, args.set)
        timed_pass(model, data, 2)  # traces
        prepared[name] = (model, data, batch)
        print(f"ready: {name}", flush=True)
    best: dict[str, float] = {}
    for _ in range(2):  # round robin: a drift in speed hits every variant alike
        for name, (model, data, _) in prepared.items():
            best[name] = min(best.get(name, float("inf")), timed_pass(model, data, args.steps))
    reference = best[next(iter(prepared))]
    rows = [[name, prepared[name][2], f"{args.steps / seconds:.2f}",
             f"{args.steps * prepared[name][2] * args.seconds / seconds:.1f}x", f"{reference / seconds:.2f}"]
            for name, seconds in best.items()]
    if gpus:
        details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
        where = f"{len(gpus)} x {details.get('device_name', 'GPU')}"
    else:
        where = "no GPU: the CPU stands in (a check of the script, not figures)"
    command = (f".venv/bin/python benchmarks/gpu.py --steps {args.steps} --seconds {args.seconds:g}"
               f"{' --cpu' if args.cpu else ''}{''.join(' --set ' + item for item in args.set)}")
    append_section(args.results, "GPU paths: cuDNN, mixed precision, mirrored", [
        f"Command: `{command}`", f"Machine: {machine()}; {where}",
        f"cuDNN GRU kernel: {checks['gru']}; cuDNN LSTM kernel: {checks['lstm']}",
        f"Batches: random 80-mel features, {args.seconds:g} s per utterance, 60 labels; best of 2 passes of "
        f"{args.steps} steps per variant, in turn."],
        ["variant", "utterances per step", "steps/s", "audio s per wall s", "speed vs the first row"], rows)


if __name__ == "__main__":
    main()
