"""`make bench-tflite`: the SavedModel and its three TFLite variants — accuracy, size, CPU latency per image.

Each dataset is one whole `visionline run` in a fresh work dir, as a user would type it (a subprocess), with
`train.tflite_eval_images` raised so every variant is measured on the whole eval split:
* `demo`: the embedded demo digits, `--demo` (the demo preset: small CNN at 32 px);
* `cifar10-dev` (`../shared/datasets`, skipped with a message when absent): 5,000 CIFAR-10 training photos and
  1,000 test photos with the default preset for a user's own photos (pretrained EfficientNet-Lite0 at 224 px).
The figures are the Trainer's own `tflite.json` (written beside the variants, `components/trainer/tflite_export.py`)
and the Pusher's decision from the pushed version's `visionline_push.json`: nothing is re-measured here.
"""

from __future__ import annotations

import argparse
import glob
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
EVAL_IMAGES = 100_000  # train.tflite_eval_images: the whole eval split of both datasets
DATASETS = {
    "demo": ["--demo"],
    "cifar10-dev": ["--data", str(SHARED / "cifar10-dev")],
}


def _visionline(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "pipeline", *args], cwd=REPO, env=env, text=True,
                          capture_output=True)


def run_one(name: str, work: Path) -> dict:
    """One whole run; the Trainer's tflite.json and the Pusher's TFLite decision."""
    started = time.perf_counter()
    done = _visionline("run", *DATASETS[name], "--work-dir", str(work), "--set",
                       f"train.tflite_eval_images={EVAL_IMAGES}")
    wall = time.perf_counter() - started
    (work / "run.log").write_text(done.stdout + done.stderr)
    reports = sorted(glob.glob(str(work / "pipelines" / "*" / "Trainer" / "model" / "*" / "Format-Serving" /
                                   "assets.extra" / "tflite" / "tflite.json")), key=os.path.getmtime)
    records = sorted(glob.glob(str(work / "serving" / "*" / "*" / "assets.extra" / "visionline_push.json")),
                     key=os.path.getmtime)
    summary = json.loads(_visionline("last-run", "--work-dir", str(work), "--json").stdout or "{}")
    return {"name": name, "exit": done.returncode, "wall_s": wall, "log": str(work / "run.log"),
            "report": json.loads(Path(reports[-1]).read_text()) if reports else None,
            "push": json.loads(Path(records[-1]).read_text()).get("tflite") if records else None,
            "evaluator_accuracy": summary.get("metrics", {}).get("sparse_categorical_accuracy")}


def rows(result: dict) -> list[str]:
    """One Markdown row per model (SavedModel, then each TFLite variant)."""
    report, push = result["report"], result["push"] or {}
    if report is None:
        return [f"| {result['name']} | run failed (exit {result['exit']}) or no tflite.json: see {result['log']} "
                "| | | | | | |"]
    saved, images = report["saved_model"], report["eval"]["images"]
    withheld = {item["variant"]: item["reason"] for item in push.get("withheld", [])}
    shipped = set(push.get("shipped", []))
    out = [f"| {result['name']} | SavedModel | {saved['accuracy']:.4f} | — | {saved['size_mb']:.2f} | "
           f"{saved['cpu_latency_ms']:.2f} (decoding included) | {saved['parameters']:,} | yes |"]
    for variant, figures in report["variants"].items():
        if figures.get("accuracy") is None:
            out.append(f"| {result['name']} | TFLite {variant} | — | — | — | — | | no: {figures.get('error', '')} |")
            continue
        status = "yes" if variant in shipped else f"no: {withheld.get(variant, 'not pushed')}"
        quantization = figures["quantization"]  # "int8 (full integer, calibrated)" → "full integer, calibrated"
        if quantization.startswith(f"{variant} (") and quantization.endswith(")"):
            quantization = quantization[len(variant) + 2:-1]
        out.append(f"| {result['name']} | TFLite {variant} ({quantization}) | {figures['accuracy']:.4f} | "
                   f"{figures['top1_agreement_with_saved_model']:.4f} | {figures['size_mb']:.2f} | "
                   f"{figures['cpu_latency_ms']:.2f} | {saved['parameters']:,} | {status} |")
    evaluator = result["evaluator_accuracy"]
    return out + [f"| {result['name']} | *{report['metric']} on {images} `{report['eval']['split']}` images "
                  f"(the Evaluator's accuracy: {'—' if evaluator is None else f'{evaluator:.4f}'}); "
                  f"whole run {result['wall_s'] / 60:.1f} min* | | | | | | |"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(DATASETS), help="datasets to run (default: all)")
    parser.add_argument("--out", help="write the results as a dated Markdown section into this file")
    args = parser.parse_args(argv)
    names = args.only or list(DATASETS)
    if "cifar10-dev" in names and not (SHARED / "cifar10-dev").is_dir():
        print(f"bench-tflite: {SHARED / 'cifar10-dev'} is absent (a fresh clone has no ../shared): "
              "cifar10-dev skipped", file=sys.stderr)
        names = [n for n in names if n != "cifar10-dev"]
    table = ["| data | model | accuracy | top-1 agreement with the SavedModel | size MB | CPU ms per image | "
             "parameters | shipped by the Pusher |", "|---|---|---:|---:|---:|---:|---:|---|"]
    for name in names:
        with tempfile.TemporaryDirectory(prefix=f"bench-tflite-{name}-") as work:
            print(f"bench-tflite: {name} …", file=sys.stderr, flush=True)
            result = run_one(name, Path(work))
            table += rows(result)
            print("\n".join(table[-5:]), file=sys.stderr, flush=True)
    text = "\n".join([
        "## bench-tflite: the SavedModel and its TFLite variants (issue #25)", "", machine_line(), "",
        "One whole `visionline run` per dataset (demo: `--demo`, the demo preset; cifar10-dev: the default preset), "
        f"with `train.tflite_eval_images={EVAL_IMAGES}` so each variant is scored on the whole eval split. Figures "
        "from the Trainer's `tflite.json` and the Pusher's decision (`eval.max_tflite_accuracy_drop`, default 0.02). "
        "Latency: median of single-image calls on this CPU — the SavedModel's `serving_default` on encoded bytes "
        "(decoding included), a TFLite interpreter call on decoded uint8 pixels (decoding not included).", "",
        *table])
    print(text)
    if args.out:
        write_section(args.out, "bench-tflite", text)
        print(f"wrote section bench-tflite of {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
