"""`make bench-train`: training quality and speed on real Fashion-MNIST (Debian `dataset-fashion-mnist`).

Parts (select with --parts):
  full      – the whole pipeline on the 60k/10k split: `simple_cnn` and a stronger configuration, N runs each
              (accuracy, kappa, Trainer wall time; mean ± std).
  transfer  – 1,000 training images: EfficientNet-Lite0 with ImageNet weights vs the same net from scratch vs
              `simple_cnn` (pipeline runs; evaluated on the full 10k test set).
  throughput – images/s of the Trainer's fit (its callbacks, backup, validation pass) vs a plain `model.fit` on
              the same tf.data input, with and without the same validation data (median of interleaved rounds,
              so a slow spell of a shared host hits every variant alike), and of cached-feature head training vs
              a full forward pass.
"""

from __future__ import annotations

import argparse
import gzip
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pipeline.configs import PipelineConfig  # noqa: E402
from pipeline.local_runner import configure_logging, run_local  # noqa: E402
from tests.benchmarks.markdown import machine_line, write_section  # noqa: E402

FASHION = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]
ROUNDS = 3  # interleaved timing rounds of the throughput part


def _idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def fashion_mnist_folders(dest: Path, train_limit: int | None = None) -> Path:
    """Write Fashion-MNIST as `train/<class>/*.png` + `test/<class>/*.png` (first `train_limit` train images)."""
    from PIL import Image

    marker = dest.with_name(dest.name + f".complete-{train_limit}")
    if marker.exists():
        return dest
    for split, prefix, limit in (("train", "train", train_limit), ("test", "t10k", None)):
        images = _idx(FASHION / f"{prefix}-images-idx3-ubyte.gz")
        labels = _idx(FASHION / f"{prefix}-labels-idx1-ubyte.gz")
        for index, (image, label) in enumerate(zip(images[:limit], labels[:limit])):
            folder = dest / split / CLASSES[int(label)]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image, mode="L").save(folder / f"{index:05d}.png")
    marker.write_text("ok")
    return dest


def _latest_history(work: Path) -> dict:
    """The newest Trainer run's history.json (epochs run, best epoch, per-epoch curves)."""
    histories = sorted(work.glob("pipelines/*/Trainer/model_run/*/history.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(histories[-1].read_text()) if histories else {}


def _pipeline_runs(data: Path, work: Path, label: str, overrides: list[str], seeds: list[int]) -> dict:
    """One pipeline run per seed (`train.seed`), all in one pipeline root so ingestion/Transform are cached."""
    accs, kappas, trainer_s, wall_s, epochs, runs = [], [], [], [], [], []
    for run, seed in enumerate(seeds):
        config = PipelineConfig().override(["preset=demo", f"data.root={data}", f"work_dir={work}",
                                            "eval.min_accuracy=0", "eval.min_kappa=0", "eval.max_regression=1",
                                            f"train.seed={seed}", *overrides])
        start = time.perf_counter()
        summary = run_local(config)
        wall_s.append(time.perf_counter() - start)
        accs.append(summary.metrics["sparse_categorical_accuracy"])
        kappas.append(summary.metrics["cohen_kappa"])
        trainer_s.append(next(c.seconds for c in summary.components if c.node_id == "Trainer"))
        history = _latest_history(work)
        epochs.append(len(history.get("history", {}).get("loss", [])))
        paired = ""
        if config.train.tta_flip:  # the same weights without test-time augmentation
            models = sorted(work.glob("pipelines/*/Trainer/model/*/Format-Serving"), key=lambda p: p.stat().st_mtime)
            eval_files = sorted(str(p) for p in work.glob("pipelines/*/*ExampleGen/examples/*/Split-eval/*"))
            with_tta, without = accuracy_with_and_without_tta(models[-1], eval_files)
            paired = f" (same weights without flip TTA: {without:.4f}; recomputed with it: {with_tta:.4f})"
        runs.append(f"seed {seed}: accuracy {accs[-1]:.4f}{paired}, kappa {kappas[-1]:.4f}, Trainer "
                    f"{trainer_s[-1] / 60:.1f} min, {epochs[-1]} epochs (best {history.get('best_epoch')}), "
                    f"whole run {wall_s[-1] / 60:.1f} min")
        print(f"{label} run {run + 1}: {runs[-1]}", flush=True)
    return {"label": label, "overrides": overrides, "acc": accs, "kappa": kappas, "trainer_s": trainer_s,
            "wall_s": wall_s, "epochs": epochs, "runs": runs}


def accuracy_with_and_without_tta(model_dir: Path, eval_files: list[str], batch: int = 500) -> tuple[float, float]:
    """Accuracy of one exported model on the pipeline's eval split with flip test-time augmentation and without it
    (same weights): the raw examples go through the model's own `transform_features` signature, then the Keras
    model runs on the images and on their mirror images."""
    import tensorflow as tf
    import tf_keras as keras

    from components import features
    from components.trainer import export

    model = keras.models.load_model(str(model_dir))
    transform = tf.saved_model.load(str(model_dir)).signatures[export.TRANSFORM_FEATURES]
    plain = tta = total = 0
    for examples in tf.data.TFRecordDataset(eval_files, compression_type="GZIP").batch(batch):
        transformed = transform(examples=examples)
        labels = tf.reshape(transformed[features.LABEL_XF], [-1]).numpy()
        images = transformed[features.IMAGE_XF]
        plain += int((np.argmax(model({features.IMAGE_XF: images}, training=False), -1) == labels).sum())
        tta += int((np.argmax(export.mirror_averaged(model, images), -1) == labels).sum())
        total += len(labels)
    return tta / total, plain / total


def _fmt(values: list[float], digits: int = 4) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def _table(results: list[dict]) -> list[str]:
    lines = ["| configuration | runs | accuracy | Cohen's kappa | epochs run | Trainer wall time |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['label']} | {len(r['acc'])} | {_fmt(r['acc'])} | {_fmt(r['kappa'])} | "
                     f"{', '.join(str(e) for e in r['epochs'])} | {_fmt([s / 60 for s in r['trainer_s']], 1)} min |")
    lines.append("")
    lines += [f"- {r['label']}, {run}" for r in results for run in r["runs"]]
    return lines


COSINE = ["transform.image_size=28", "train.epochs=36", "train.batch_size=128", "train.cnn_pooling=flatten",
          "train.cnn_block_dropout=0.2", "train.dense_units=256", "train.dropout=0.4", "train.augment_flip=true",
          "train.lr_schedule=cosine", "train.early_stopping_patience=36"]  # the best configuration so far
FULL_CONFIGS = {
    "simple": ("simple_cnn 28 px (32-64-128, global average pooling), no augmentation, ≤10 epochs",
               ["transform.image_size=28", "train.epochs=10", "train.batch_size=128"]),
    "strong": ("simple_cnn 28 px (32-64-128) + dense 256, flip/translate, LR ÷3 on plateau, ≤30 epochs",
               ["transform.image_size=28", "train.epochs=30", "train.batch_size=128", "train.dense_units=256",
                "train.dropout=0.4", "train.augment_flip=true", "train.augment_translation=0.1",
                "train.early_stopping_patience=6", "train.reduce_lr_patience=2"]),
    "flatten": ("simple_cnn 28 px (32-64-128, flatten, block dropout 0.25) + dense 256, flip, LR ÷3 on plateau, "
                "≤20 epochs",
                ["transform.image_size=28", "train.epochs=20", "train.batch_size=128", "train.cnn_pooling=flatten",
                 "train.cnn_block_dropout=0.25", "train.dense_units=256", "train.dropout=0.4",
                 "train.augment_flip=true", "train.early_stopping_patience=5", "train.reduce_lr_patience=2"]),
    "cosine": ("simple_cnn 28 px (32-64-128, flatten, block dropout 0.2) + dense 256, flip, cosine learning rate "
               "over 36 epochs", COSINE),
    "cosine_tta": ("`cosine`, served with flip test-time augmentation (mean over the image and its mirror)",
                   [*COSINE, "train.tta_flip=true"]),
    "shift": ("simple_cnn 28 px (32-64-128, flatten, block dropout 0.2) + dense 256, flip and ±10 % translation, "
              "cosine learning rate over 36 epochs", [*COSINE, "train.augment_translation=0.1"]),
    "lean_tta": ("`cosine_tta` with less regularisation and more training data: block dropout 0.1, head dropout 0.3, "
                 "5 % validation split", [*COSINE, "train.cnn_block_dropout=0.1", "train.dropout=0.3",
                                          "train.validation_fraction=0.05", "train.tta_flip=true"]),
    "lean_acc": ("`lean_tta`, keeping the epoch with the best validation accuracy (not validation loss)",
                 [*COSINE, "train.cnn_block_dropout=0.1", "train.dropout=0.3", "train.validation_fraction=0.05",
                  "train.tta_flip=true", "train.early_stopping_monitor=val_accuracy"]),
}


def full(work: Path, seeds: list[int], configs: list[str]) -> list[str]:
    """simple_cnn and stronger configurations on the full 60k/10k split. All configurations share one pipeline
    root, so ingestion, statistics and Transform run once and are cached for the others (same image size)."""
    data = fashion_mnist_folders(work / "fashion-full")
    results = [_pipeline_runs(data, work / "full", FULL_CONFIGS[name][0], FULL_CONFIGS[name][1], seeds)
               for name in configs]
    return ["### Full Fashion-MNIST (60,000 train / 10,000 test)", "", *_table(results), "",
            "Published anchors for this test set: 2-conv CNNs 0.916–0.939, ResNet18 0.949, WRN40-4 0.967."]


def transfer(work: Path, seeds: list[int]) -> list[str]:
    """The value of ImageNet weights on 1,000 training images."""
    data = fashion_mnist_folders(work / "fashion-1k", train_limit=1000)
    common = ["train.epochs=30", "train.batch_size=32", "train.early_stopping_patience=5"]
    results = [
        _pipeline_runs(data, work / "tl-lite0", "EfficientNet-Lite0, ImageNet weights, 96 px, head + fine-tune",
                       ["train.model=efficientnet_lite0", "train.weights=imagenet", "transform.image_size=96",
                        "train.fine_tune_epochs=5", "train.fine_tune=30%",
                        "train.fine_tune_learning_rate=1e-4", *common], seeds),
        _pipeline_runs(data, work / "tl-scratch", "EfficientNet-Lite0 from scratch, 96 px",
                       ["train.model=efficientnet_lite0", "train.weights=none", "transform.image_size=96",
                        "train.learning_rate=1e-3", *common, "train.epochs=20"], seeds),
        _pipeline_runs(data, work / "tl-cnn", "simple_cnn, 28 px", ["transform.image_size=28", *common], seeds),
    ]
    return ["### Transfer-learning value (1,000 training images, full 10,000-image test set)", "",
            *_table(results)]


def throughput(work: Path) -> list[str]:
    """Trainer fit vs plain model.fit on the same data, and cached-feature head training vs full forward."""
    import tensorflow as tf

    from components.trainer import fitting
    from components.trainer import model as models
    from components.trainer.backbones import registry

    rng = np.random.default_rng(0)
    images = _idx(FASHION / "train-images-idx3-ubyte.gz")[:8192]
    labels = _idx(FASHION / "train-labels-idx1-ubyte.gz")[:8192].astype(np.int64)
    pixels = np.repeat(images[..., None], 3, axis=-1).astype(np.float32) / 255.0
    dataset = tf.data.Dataset.from_tensor_slices(({"image_xf": pixels}, labels)).batch(128).cache()
    for _ in dataset:  # fill the cache outside the timings
        pass
    lines = [f"### Training throughput (8,192 Fashion-MNIST images, 28 px, batch 128; median of {ROUNDS} "
             "interleaved one-epoch rounds after a warm-up round)", "",
             "Each round is a whole `fit` call of one epoch, so once-per-fit costs (TensorBoard writers, backup "
             "set-up and removal) are charged to every epoch: an upper bound on the overhead of a many-epoch "
             "Trainer. CPU time (all threads of the process) is shown beside wall time because CPU steal on a "
             "shared host moves wall time by tens of per cent between identical epochs.", "",
             "| what | images/s (wall; range over rounds) | CPU s per 1,000 images |", "|---|---:|---:|"]

    def rate(fn) -> float:
        fn(1)  # warm-up: graph building
        start = time.perf_counter()
        fn(2)
        return 2 * len(labels) / (time.perf_counter() - start)

    # The Trainer always validates (early stopping needs val_loss), so the fair reference is model.fit with the same
    # validation data; plain fit without it is shown too. Rounds alternate between the three so that a slow spell
    # of a shared host (CPU steal) hits all of them alike.
    tmp = Path(tempfile.mkdtemp(dir=work))
    validation = dataset.take(4)
    models_by_name = {name: models.build_simple_cnn(28, 10) for name in ("plain", "plain_val", "trainer")}
    runs = {
        "plain": lambda r: models_by_name["plain"].fit(dataset, epochs=1, verbose=0),
        "plain_val": lambda r: models_by_name["plain_val"].fit(dataset, validation_data=validation, epochs=1,
                                                               verbose=0),
        "trainer": lambda r: fitting.fit_phase(models_by_name["trainer"], dataset, validation, epochs=1,
                                                patience=10, log_dir=str(tmp / f"tb{r}"), backup=str(tmp / f"b{r}")),
    }
    wall: dict[str, list[float]] = {name: [] for name in runs}
    cpu: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(-1, ROUNDS):  # round -1: warm-up (graph building), not timed
        for name, run in runs.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            run(r)
            if r >= 0:
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.process_time() - start_cpu)
    rates = {name: len(labels) / float(np.median(values)) for name, values in wall.items()}
    cpu_per_k = {name: 1000 * float(np.median(values)) / len(labels) for name, values in cpu.items()}

    def row(what: str, name: str) -> str:
        low, high = len(labels) / max(wall[name]), len(labels) / min(wall[name])
        return f"| {what} | {rates[name]:,.0f} ({low:,.0f}–{high:,.0f}) | {cpu_per_k[name]:.2f} |"

    def overhead(reference: str) -> str:
        by_wall = 100 * (rates[reference] - rates["trainer"]) / rates[reference]
        by_cpu = 100 * (cpu_per_k["trainer"] - cpu_per_k[reference]) / cpu_per_k[reference]
        return f"{by_wall:.1f} % | {by_cpu:.1f} % |"

    lines += [row("plain `model.fit` (no validation)", "plain"),
              row("plain `model.fit` with the same validation data", "plain_val"),
              row("the Trainer's `fit_phase` (validation, early stopping, TensorBoard, per-epoch backup)", "trainer"),
              f"| Trainer overhead vs `model.fit` with validation | {overhead('plain_val')}",
              f"| Trainer overhead vs `model.fit` without validation | {overhead('plain')}", "",
              "| what | images/s |", "|---|---:|"]
    backbone = registry.get_backbone("efficientnet_lite0").build((96, 96, 3), None)
    small = tf.data.Dataset.from_tensor_slices(
        ({"image_xf": rng.random((512, 96, 96, 3), dtype=np.float32)}, labels[:512])).batch(64).cache()
    head = models.build_head(1280, 10, "multiclass", 0.2, 0)
    backbone.trainable = False  # before compiling, as the Trainer does
    full_model = models.compile_classifier(models.build_classifier(backbone, head, 96, pretrained=True), "adam", 1e-3)
    full_rate = rate(lambda e: full_model.fit(small, epochs=e, verbose=0)) * 512 / len(labels)
    start = time.perf_counter()
    features = fitting.extract_features(backbone, small).batch(64).cache()
    extract_s = time.perf_counter() - start
    models.compile_classifier(head, "adam", 1e-3)
    head_rate = rate(lambda e: head.fit(features, epochs=e, verbose=0)) * 512 / len(labels)
    lines += [f"| EfficientNet-Lite0 96 px, frozen backbone, full forward per epoch | {full_rate:,.0f} |",
              f"| same, head on cached features (one-off extraction {extract_s:.1f} s for 512 images) | "
              f"{head_rate:,.0f} |"]
    return lines


def main() -> None:
    """Run the selected parts and print / write the Markdown."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="throughput,transfer,full")
    parser.add_argument("--runs", type=int, default=3, help="runs per configuration, seeds 42, 43, …")
    parser.add_argument("--seeds", default=None,
                        help="comma-separated train.seed values instead of --runs (e.g. to finish a series: 43,44)")
    parser.add_argument("--full-configs", default="simple,cosine", help=f"of {', '.join(FULL_CONFIGS)}")
    parser.add_argument("--work", default=None, help="scratch folder (default: a new temp dir)")
    parser.add_argument("--out", help="Markdown file to update (docs/benchmarks.md)")
    args = parser.parse_args()
    if not FASHION.exists():
        raise SystemExit(f"{FASHION} missing: install Debian's dataset-fashion-mnist (make bench-train does)")
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else [42 + run for run in range(args.runs)]
    configure_logging(verbose=False)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-train-"))
    work.mkdir(parents=True, exist_ok=True)
    sections = {"throughput": lambda: throughput(work), "transfer": lambda: transfer(work, seeds),
                "full": lambda: full(work, seeds, args.full_configs.split(","))}
    body = ["## bench-train: training on Fashion-MNIST", "", machine_line(), ""]
    for part in args.parts.split(","):
        start = time.perf_counter()
        body += sections[part]()
        body += ["", f"_{part}: {(time.perf_counter() - start) / 60:.1f} min of benchmark wall time._", ""]
        print("\n".join(body), flush=True)
    if args.out:
        name = args.parts.replace(",", "-")
        if "full" in args.parts:
            name += "-" + args.full_configs.replace(",", "-")
        write_section(args.out, f"bench-train-{name}", "\n".join(body))


if __name__ == "__main__":
    main()
