"""Voice activity detection: speech / non-speech for every 10 ms frame, on real speech in noise.

    .venv/bin/python pipelines/voice_activity.py
    .venv/bin/python pipelines/voice_activity.py --set train.epochs=20 --out runs/vad-long

Scenes of 6 s hold 1-3 FSDD clips at random places over white or brown noise at 0,
5, 10 or 20 dB SNR, or none (`speechseq.scenes`). Training scenes use takes 5-49
of george, jackson and nicolas (dev: their takes 0-4), plus `--synthetic-voices N`
eSpeak NG voices reading digit strings, plus `--kathleen-scenes N` scenes of Kathleen's
read sentences (a fourth human voice, and every English phone rather than ten words),
plus with `--speed 0.9 1.1` the three training speakers played at those speeds as voices
of their own, plus `--speechocean-scenes N` 10 s scenes of each of speechocean762's 97
training speakers (children and adults reading sentences; clips of up to 9 s placed whole,
a pause of 300 ms or more inside one is non-speech: `scenes`). `--noises` picks the noise
kinds of the training scenes (white and brown by default; babble, tones and hum as well);
`--reverb P` hears that share of them in simulated rooms (RT60 0.2-0.7 s); `--channels P`
that share through a transmission channel (8 kHz, telephone, GSM, low-rate Opus or MP3:
`speechseq.channels`);
`--start-from MODEL` starts from a recogniser's features and encoder with a fresh frame head.
The test scenes use speakers never trained on: FSDD's lucas and yweweler (white or brown
noise, once at mixed SNRs and once all at 10 dB), and the 16 held-out speechocean762
speakers of pipelines/speechocean762_split.json, at 0, 5, 10 and 20 dB and clean, in every
noise kind (babble from the other held-out speakers), and the 10 dB scenes heard in simulated rooms
and through channels; the 12 dev speakers join the dev scenes
when their training speakers are in. Trains a per-frame model (re-running resumes),
exports it to saved_models/voice-activity (with --export) with its smoothing tuned on
the dev scenes (`speechseq.tuning`), and reports frame accuracy, speech F1 and segment
F1 (onset and offset within 100 ms) to RUN/results.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import time
from collections.abc import Sequence
from pathlib import Path

from speechseq import corpora, derived, evaluate, finetune, runfile, scenes, synth, train
from speechseq.files import write_text
from speechseq.text import DIGIT_WORDS

ROOT = Path(__file__).resolve().parents[1]
FSDD = corpora.data_root() / "fsdd"
KATHLEEN = corpora.data_root() / "kathleen" / "clips"
KATHLEEN_MAX_SECONDS = 4.5  # longer clips leave no room in a 6 s scene
SPEECHOCEAN = corpora.data_root() / "speechocean762" / "manifest.jsonl"
SPEAKER_SPLIT = json.loads((ROOT / "pipelines" / "speechocean762_split.json").read_text())
SPEECHOCEAN_MAX_SECONDS = 9.0  # 89% of its clips; each scene holds one or two
# Read sentences in 10 s scenes, a pause of 300 ms or more non-speech (shorter ones are stop
# closures and word junctions that any VAD's hangover bridges).
SPEECHOCEAN_SCENES = scenes.SceneOptions(seconds=10.0, max_clips=2, min_pause=0.3)
TEST_SNRS = (0.0, 5.0, 10.0, 20.0, None)
TRAINING_SPEAKERS = ("george", "jackson", "nicolas")
TEST_SPEAKERS = ("lucas", "yweweler")
SCENES_PER_SPEAKER = 150  # training scenes of each FSDD speaker

DEFAULTS = [
    "train.task=frames",
    "data.background=silence",
    "features.n_mels=40",
    "model.cell=gru",
    "model.layers=2",
    "model.units=64",
    "model.subsampling=2",
    "model.conv_channels=64",
    "train.epochs=12",
    "train.batch_size=16",
    "train.learning_rate=2e-3",
    "train.class_weights=balanced",
    "train.early_stopping=0",
    "train.feature_cache=memory",
]


def synthetic_speakers(count: int, folder: Path) -> dict[str, list[Path]]:
    """`count` eSpeak NG voices, each reading 30 short digit strings."""
    strings = [" ".join(random.Random(i).choices(DIGIT_WORDS, k=1 + i % 3)) for i in range(30)]
    by_speaker: dict[str, list[Path]] = {}
    for utterance in synth.synthetic_corpus(strings, synth.voices(count, seed=11), folder):
        by_speaker.setdefault(utterance.speaker, []).append(utterance.audio)
    return by_speaker


def kathleen_clips(limit: float = KATHLEEN_MAX_SECONDS) -> dict[str, list[Path]]:
    """Kathleen's clips of at most `limit` seconds, as one speaker."""
    return {"kathleen": [u.audio for u in corpora.transcribed_folder(KATHLEEN, speaker="kathleen")
                         if u.duration is not None and u.duration <= limit]}


def speed_perturbed_speakers(by_speaker: dict[str, list[Path]], factors: Sequence[float],
                             folder: Path) -> dict[str, list[Path]]:
    """Each speaker's clips played at each speed factor, as a speaker of its own
    ("george-sp0.9"): a higher or lower voice and a faster or slower tempo."""
    return {f"{speaker}-sp{factor:g}": [copy.audio for copy in derived.speed_perturbed(
                [corpora.Utterance(path, speaker=speaker) for path in paths], [factor], folder)]
            for speaker, paths in by_speaker.items() for factor in factors}


def speechocean_speakers(split: str) -> dict[str, list[Path]]:
    """speaker -> clips of at most SPEECHOCEAN_MAX_SECONDS of one part of the shared
    speechocean762 split ("train": every speaker neither in "dev" nor in "test")."""
    held_out = set(SPEAKER_SPLIT["dev"]) | set(SPEAKER_SPLIT["test"])
    wanted = (lambda speaker: speaker not in held_out) if split == "train" else set(SPEAKER_SPLIT[split]).__contains__
    by_speaker: dict[str, list[Path]] = {}
    for utterance in corpora.read_manifest(SPEECHOCEAN):
        if wanted(utterance.speaker) and utterance.duration is not None and utterance.duration <= SPEECHOCEAN_MAX_SECONDS:
            by_speaker.setdefault(utterance.speaker, []).append(utterance.audio)
    return by_speaker


def speechocean_tests(folder: Path) -> dict[str, Path]:
    """Scenes of the held-out speechocean762 speakers, one set per SNR, every noise kind
    (built once; shared by every training corpus): "speechocean_10db", "speechocean_clean"..."""
    folder = folder / "speechocean762-test"
    held_out = speechocean_speakers("test")
    sets = {}
    for index, snr in enumerate(TEST_SNRS):
        name = "speechocean_" + ("clean" if snr is None else f"{snr:g}db")
        sets[name] = folder / f"{name}.jsonl"
        if not sets[name].exists():
            options = dataclasses.replace(SPEECHOCEAN_SCENES, scenes_per_speaker=8, snrs=(snr,),
                                          noises=scenes.ALL_NOISES, seed=20 + index)
            scenes.build(held_out, folder, options, name)
    # The 10 dB scenes again, each heard in a simulated room (the `rooms` extra; same seed, same scenes).
    sets["speechocean_10db_rooms"] = folder / "speechocean_10db_rooms.jsonl"
    if not sets["speechocean_10db_rooms"].exists():
        options = dataclasses.replace(SPEECHOCEAN_SCENES, scenes_per_speaker=8, snrs=(10.0,), noises=scenes.ALL_NOISES,
                                      reverb=1.0, seed=20 + TEST_SNRS.index(10.0))
        scenes.build(held_out, folder, options, "speechocean_10db_rooms")
    # And each through a transmission channel (same seed, same scenes).
    sets["speechocean_10db_channels"] = folder / "speechocean_10db_channels.jsonl"
    if not sets["speechocean_10db_channels"].exists():
        options = dataclasses.replace(SPEECHOCEAN_SCENES, scenes_per_speaker=8, snrs=(10.0,), noises=scenes.ALL_NOISES,
                                      channel_share=1.0, seed=20 + TEST_SNRS.index(10.0))
        scenes.build(held_out, folder, options, "speechocean_10db_channels")
    return sets


def corpus(folder: Path, synthetic_voices: int, scenes_per_voice: int = SCENES_PER_SPEAKER,
           kathleen_scenes: int = 0, speeds: Sequence[float] = (), speechocean_scenes: int = 0,
           noises: Sequence[str] = scenes.NOISES, reverb: float = 0.0, channels: float = 0.0) -> dict[str, Path]:
    """The scene manifests (built once; same seed, same files)."""
    # "labels25ms": edges found on 25 ms frames (earlier corpora used 128 ms ones, up to
    # 100 ms loose); a new name keeps them from being reused.
    folder = folder / "labels25ms" / f"espeak{synthetic_voices}"
    if scenes_per_voice != SCENES_PER_SPEAKER:
        folder = folder.with_name(f"{folder.name}x{scenes_per_voice}")
    if kathleen_scenes:
        folder = folder.with_name(f"{folder.name}-kathleen{kathleen_scenes}")
    if speeds:
        folder = folder.with_name(folder.name + "".join(f"-sp{f:g}" for f in speeds))
    if speechocean_scenes:
        folder = folder.with_name(f"{folder.name}-speechocean{speechocean_scenes}")
    if tuple(noises) != scenes.NOISES:
        folder = folder.with_name(f"{folder.name}-{'+'.join(noises)}")
    if reverb:
        folder = folder.with_name(f"{folder.name}-reverb{reverb:g}")
    if channels:
        folder = folder.with_name(f"{folder.name}-channels{channels:g}")
    tests = speechocean_tests(folder.parents[1])
    if (folder / "test_10db.jsonl").exists():
        return {name: folder / f"{name}.jsonl" for name in ("train", "dev", "test", "test_10db")} | tests
    training = scenes.fsdd_speakers(FSDD, TRAINING_SPEAKERS, range(5, 50))
    options = scenes.SceneOptions(scenes_per_speaker=SCENES_PER_SPEAKER, noises=noises, reverb=reverb,
                                  channel_share=channels, seed=1)
    # Babble is other people talking: the speechocean762 speakers of the same split.
    babble, dev_babble = (speechocean_speakers("train"), speechocean_speakers("dev")) if "babble" in noises else (None, None)
    parts = [scenes.build(training, folder, options, "train", babble=babble)]
    if synthetic_voices:
        # Many voices with fewer scenes each: more variety for the same training time.
        parts.append(scenes.build(synthetic_speakers(synthetic_voices, folder / "espeak"), folder,
                                  dataclasses.replace(options, scenes_per_speaker=scenes_per_voice, seed=5),
                                  "train-espeak", babble=babble))
    if speeds:
        parts.append(scenes.build(speed_perturbed_speakers(training, speeds, folder / "speed"), folder,
                                  dataclasses.replace(options, seed=7), "train-speed", babble=babble))
    if kathleen_scenes:
        parts.append(scenes.build(kathleen_clips(), folder,
                                  dataclasses.replace(options, scenes_per_speaker=kathleen_scenes, seed=6),
                                  "train-kathleen", babble=babble))
    dev_parts = [scenes.build(scenes.fsdd_speakers(FSDD, TRAINING_SPEAKERS, range(0, 5)), folder,
                              dataclasses.replace(options, scenes_per_speaker=15, seed=2), "dev",
                              babble=dev_babble)]
    if speechocean_scenes:
        so_options = dataclasses.replace(SPEECHOCEAN_SCENES, noises=noises, reverb=reverb, channel_share=channels)
        parts.append(scenes.build(speechocean_speakers("train"), folder,
                                  dataclasses.replace(so_options, scenes_per_speaker=speechocean_scenes, seed=8),
                                  "train-speechocean", babble=babble))
        dev_parts.append(scenes.build(speechocean_speakers("dev"), folder,
                                      dataclasses.replace(so_options, scenes_per_speaker=6, seed=9), "dev-speechocean",
                                      babble=dev_babble))
    train_manifest = corpora.write_manifest([u for part in parts for u in corpora.read_manifest(part)], parts[0])
    dev_manifest = corpora.write_manifest([u for part in dev_parts for u in corpora.read_manifest(part)], dev_parts[0])
    held_out = scenes.fsdd_speakers(FSDD, TEST_SPEAKERS, range(50))
    return {
        "train": train_manifest,
        "dev": dev_manifest,
        "test": scenes.build(held_out, folder, scenes.SceneOptions(scenes_per_speaker=50, seed=3), "test"),
        "test_10db": scenes.build(held_out, folder, scenes.SceneOptions(scenes_per_speaker=50, snrs=(10.0,), seed=4),
                                  "test_10db"),
    } | tests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "voice-activity")
    parser.add_argument("--set", action="append", default=[], help="run setting, e.g. train.epochs=5")
    parser.add_argument("--export", type=Path, help="also export to this saved_models/NAME")
    parser.add_argument("--card", type=Path, help="JSON merged into the export's model card")
    parser.add_argument("--synthetic-voices", type=int, default=0, help="eSpeak NG voices added to training")
    parser.add_argument("--scenes-per-voice", type=int, default=SCENES_PER_SPEAKER,
                        help="training scenes of each eSpeak NG voice")
    parser.add_argument("--kathleen-scenes", type=int, default=0, help="training scenes of Kathleen's sentences")
    parser.add_argument("--speed", type=float, nargs="+", default=[],
                        help="speed perturbation: the FSDD training speakers also as voices at these speeds, e.g. 0.9 1.1")
    parser.add_argument("--speechocean-scenes", type=int, default=0,
                        help="training scenes of each speechocean762 training speaker (97 speakers)")
    parser.add_argument("--noises", nargs="+", default=list(scenes.NOISES), choices=scenes.ALL_NOISES,
                        help="noise kinds of the training and dev scenes")
    parser.add_argument("--start-from", type=Path,
                        help="a trained model (export, run or .keras) whose features and encoder weights to start from")
    parser.add_argument("--reverb", type=float, default=0.0,
                        help="share of training and dev scenes heard in a simulated room (the `rooms` extra)")
    parser.add_argument("--channels", type=float, default=0.0,
                        help="share of training and dev scenes heard through a transmission channel (speechseq.channels)")
    args = parser.parse_args()

    manifests = corpus(ROOT / "work" / "voice-activity", args.synthetic_voices, args.scenes_per_voice,
                       args.kathleen_scenes, args.speed, args.speechocean_scenes, args.noises, args.reverb,
                       args.channels)
    settings = runfile.as_mapping(DEFAULTS + [f"data.train={manifests['train']}", f"data.dev={manifests['dev']}"])
    if args.start_from:
        settings |= finetune.starting_settings(args.start_from)
    run = runfile.load(None, settings | runfile.as_mapping(args.set), args.out)
    started = time.perf_counter()
    train.fit(run)
    results = {"training_minutes_this_session": round((time.perf_counter() - started) / 60, 1)}

    # Scored through an export: the frames and segments `speechseq tag` gives.
    card = json.loads(args.card.read_text()) if args.card else None
    test_sets = {name: corpora.read_manifest(path) for name, path in manifests.items() if name not in ("train", "dev")}
    dev = corpora.read_manifest(manifests["dev"])  # the export's smoothing is tuned on it
    for name, scores in evaluate.score_tagging_export(args.out, test_sets, args.export, card, dev).items():
        results[name] = scores  # with the confusion matrix: false alarms and misses
        print(f"{name}: frame accuracy {scores['frame_accuracy']:.2%}, speech F1 "
              f"{scores['per_class_f1']['speech']:.3f} ({scores['smoothed_per_class_f1']['speech']:.3f} smoothed), "
              f"segment F1 {scores['segment_f1']:.3f}")
    write_text(args.out / "results.json", json.dumps(results, indent=2) + "\n")

if __name__ == "__main__":
    main()
