"""`make bench-photos`: the presets on real colour photos — accuracy, Cohen's kappa, whole-run and Trainer time.

Data (skipped with a message when `../shared/datasets` is absent, e.g. on a user's fresh clone):
* `cifar10-dev`: 5,000 CIFAR-10 training photos (32×32 JPEG, pre-split `train/`) and 1,000 others (`test/`);
* `sign-language-digits`: 2,062 photos of hands (100×100 JPEG, class folders), hash split 80/20.

Every configuration is one whole `visionline run --data DIR --preset NAME` in a fresh work dir, as a user would
type it (a subprocess; the wall time includes start-up and ingestion). "before" is the demo preset — the small CNN
at 32 px that was the default for every dataset before presets existed. Figures come from the run's own records:
the Evaluator's metrics (`last-run --json`) and the Trainer's history.json (phases, times, images/s, the exported
model's size and CPU latency).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.benchmarks.markdown import machine_line, write_section  # noqa: E402

SHARED = REPO.parent / "shared" / "datasets"
DATASETS = {"cifar10-dev": SHARED / "cifar10-dev", "sign-language-digits": SHARED / "sign-language-digits"}
CONFIGURATIONS = {"before": "demo", "default": "default", "fast": "fast", "accurate": "accurate"}
TARGETS = {"cifar10-dev": "≥ 0.90 accuracy in ≤ 15 min (default preset)", "sign-language-digits": "≥ 0.99 accuracy"}


def _visionline(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=REPO, env=env, text=True,
                          capture_output=True)


def run_one(data: Path, work: Path, preset: str) -> dict:
    """One whole run; its figures."""
    started = time.perf_counter()
    done = _visionline("run", "--data", str(data), "--work-dir", str(work), "--preset", preset)
    wall = time.perf_counter() - started
    (work / "run.log").write_text(done.stdout + done.stderr)
    summary = json.loads(_visionline("last-run", "--work-dir", str(work), "--json").stdout or "{}")
    histories = sorted(work.glob("pipelines/*/Trainer/model_run/*/history.json"), key=lambda p: p.stat().st_mtime)
    history = json.loads(histories[-1].read_text()) if histories else {}
    trainer = next((c for c in summary.get("components", []) if c.get("node_id") == "Trainer"), {})
    metrics = summary.get("metrics", {})
    return {"preset": preset, "exit": done.returncode, "wall_s": wall, "trainer_s": trainer.get("seconds"),
            "accuracy": metrics.get("sparse_categorical_accuracy"), "kappa": metrics.get("cohen_kappa"),
            "examples": metrics.get("example_count"),
            "blessed": summary.get("blessed"), "history": history, "log": str(work / "run.log")}


def _images_per_second(history: dict) -> str:
    """Training images per second of each phase (examples × epochs run / time in fit, feature extraction apart)."""
    examples = history.get("train_examples")
    cells = []
    for phase in history.get("phases", []):
        epochs = len(phase.get("history", {}).get("loss", []))
        fit = phase.get("fit_seconds")
        if examples and epochs and fit:
            cells.append(f"{phase['name']} {examples * epochs / fit:.0f}")
        if phase.get("extract_seconds") and examples:
            cells.append(f"features {examples / phase['extract_seconds']:.0f}")
    return ", ".join(cells) or "–"


def tflite_seconds(history: dict) -> float:
    """Seconds the Trainer spent on the TFLite variants (0 when off, or recorded before they were timed)."""
    return float((history.get("tflite") or {}).get("seconds") or 0.0)


def _overhead(history: dict, trainer_s: float | None) -> str:
    """The Trainer's time outside model.fit, the feature extraction and the TFLite variants (input scan, model
    build, SavedModel export, latency timing, the component's start-up)."""
    inside = sum((p.get("fit_seconds") or 0) + (p.get("extract_seconds") or 0) for p in history.get("phases", []))
    if not trainer_s or not inside:
        return "–"
    return f"{100 * (1 - (inside + tflite_seconds(history)) / trainer_s):.0f} %"


def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def accuracy_cell(accuracy: float | None, examples: float | None) -> str:
    """The accuracy and the count behind it ("0.9900 (395/399)": a 4-digit figure can round up to a target)."""
    if accuracy is None or not examples:
        return _fmt(accuracy, ".4f")
    return f"{accuracy:.4f} ({round(accuracy * examples)}/{int(examples)})"


def table(name: str, results: list[dict]) -> list[str]:
    """The Markdown rows for one dataset."""
    lines = [f"### {name} ({TARGETS.get(name, '')})", "",
             "| configuration | backbone, size | accuracy | κ | blessed | whole run | Trainer | outside fit | TFLite | "
             "images/s (phase) | model MB | CPU ms/image |",
             "|---|---|---:|---:|---|---:|---:|---:|---:|---|---:|---:|"]
    for label, result in results:
        history = result["history"]
        export = history.get("export", {})
        lines.append(
            f"| {label} (`--preset {result['preset']}`) "
            f"| {history.get('backbone', '–')}, {history.get('image_size', '–')} px"
            f" | {accuracy_cell(result['accuracy'], result.get('examples'))} | {_fmt(result['kappa'], '.4f')} "
            f"| {result['blessed']} "
            f"| {result['wall_s'] / 60:.1f} min | {_fmt(result['trainer_s'], '.0f')} s "
            f"| {_overhead(history, result['trainer_s'])} "
            f"| {f'{tflite_seconds(history):.0f} s' if tflite_seconds(history) else '–'} "
            f"| {_images_per_second(history)} "
            f"| {_fmt(export.get('saved_model_mb'), '.1f')} | {_fmt(export.get('cpu_latency_ms'), '.1f')} |")
    return lines


INTRO = ("Each row is one whole `visionline run --data DIR --preset NAME` in a fresh work dir (wall time from start-up "
         "to the pushed model and its report). \"before\" is the demo preset, the small CNN at 32 px that was the "
         "default before presets. *Outside fit*: the Trainer's time not spent in `model.fit`, in the one-off "
         "backbone feature extraction or on the TFLite variants (input scan, model build, SavedModel export, latency "
         "timing, the component's start-up). *TFLite*: converting the float32, float16 and int8 variants and "
         "scoring each on 200 eval images (`train.tflite=false` skips it). *Images/s*: training "
         "images per second of each phase; *features*: the phase-1 feature extraction. *CPU ms/image*: median of one "
         "`serving_default` call on one image, in-process.")


def main() -> None:
    """Run the configurations on each dataset that is present; print and write the tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", help="Markdown file to update (docs/benchmarks.md)")
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--configs", default=",".join(CONFIGURATIONS), help="before, default, fast, accurate")
    parser.add_argument("--work", help="work folder (default: a new temporary one)")
    args = parser.parse_args()
    wanted = [d for d in args.datasets.split(",") if d]
    missing = [d for d in wanted if not DATASETS[d].is_dir()]
    if missing:
        print(f"bench-photos: skipped {', '.join(missing)}: {SHARED} is not on this machine (it ships with the "
              "development and CI machines, not with the repository)")
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-photos-"))
    for name in (d for d in wanted if d not in missing):
        data = DATASETS[name]
        results = []
        for label in args.configs.split(","):
            result = run_one(data, work / name / label, CONFIGURATIONS[label])
            results.append((label, result))
            print(f"{name} {label}: accuracy {result['accuracy']}, kappa {result['kappa']}, "
                  f"{result['wall_s'] / 60:.1f} min (exit {result['exit']}; log {result['log']})", flush=True)
            body = "\n".join([f"## bench-photos: the presets on {name}", "", machine_line(), "", INTRO, "",
                              *table(name, results)])
            if args.out:  # after every configuration: a long benchmark stopped early keeps what it measured
                write_section(args.out, f"bench-photos-{name}", body)
        print(body)


if __name__ == "__main__":
    main()
