"""Tests for comparing runs: the Trainer's model facts read from history.json (`pipeline.runs.model_facts`), the
`visionline runs` comparison table and JSON (`pipeline.report.listing`) on an ML Metadata store written here with
a run that records every fact and an older one that records none, and the spread of repeated runs
(`pipeline.runs.repeats`: seeds, mean ± sample std, the worst exit code, stopping at the data gate).
"""

from __future__ import annotations

import json
import statistics

import numpy as np
import pytest
from ml_metadata.proto import metadata_store_pb2

from pipeline.cli import errors
from pipeline.configs import PipelineConfig
from pipeline.report import listing
from pipeline.runs import repeats
from pipeline.runs.model_facts import ModelFacts
from pipeline.runs.summary import RunSummary
from tests.pipeline.mlmd_runs import RunStore

RUNS = ("2026-03-01T10:00:00.000001", "2026-03-02T10:00:00.000002")
FACTS = {"backbone": "efficientnet_lite0", "preset": "photos", "image_size": 224, "parameters": 3_413_024,
         "train_seconds": 754.2, "fit_seconds": 701.9, "device": "GPU:0 (NVIDIA H100 80GB HBM3)",
         "export": {"saved_model_mb": 14.83, "cpu_latency_ms": 21.456}}


def _history(folder, extra):
    folder.mkdir(parents=True)
    (folder / "history.json").write_text(json.dumps({"history": {"loss": [1.0, 0.5]}, "class_names": ["a", "b"],
                                                     **extra}))
    return str(folder)


@pytest.fixture(scope="module")
def metadata_path(tmp_path_factory):
    """Two runs of pipeline `vl` whose Trainer wrote a `model_run`: the older run's history.json has none of the
    comparison facts, the newer one has all of them, and its Pusher pushed version 17."""
    root = tmp_path_factory.mktemp("compare")
    runs_store = RunStore(root / "metadata.sqlite", ("ModelRun", "PushedModel"))

    def execute(run, node_id, key, type_name, uri, props=None):
        runs_store.execute(run, node_id, metadata_store_pb2.Execution.COMPLETE, [(key, type_name, uri, props or {})])

    old, new = (runs_store.run(name) for name in RUNS)
    execute(old, "Trainer", "model_run", "ModelRun", _history(root / "Trainer" / "model_run" / "3", {}))
    execute(new, "Trainer", "model_run", "ModelRun", _history(root / "Trainer" / "model_run" / "7", FACTS))
    execute(new, "Pusher", "pushed_model", "PushedModel", str(root / "Pusher" / "pushed_model" / "8"),
            {"pushed": 1, "pushed_version": "17", "pushed_destination": "/serving/vl/17"})
    return str(root / "metadata.sqlite")


def test_model_facts_from_history_take_every_key_and_refuse_bad_values():
    facts = ModelFacts.from_history(FACTS)
    assert facts == ModelFacts("efficientnet_lite0", "photos", 224, 3_413_024, 754.2, 701.9,
                               "GPU:0 (NVIDIA H100 80GB HBM3)", 14.83, 21.456)
    assert ModelFacts.from_history({}) == ModelFacts()
    odd = ModelFacts.from_history({"backbone": "", "image_size": "224", "parameters": True,
                                   "train_seconds": float("nan"), "export": "14 MB"})
    assert odd == ModelFacts()


def test_runs_table_compares_the_recorded_facts_and_shows_a_dash_for_older_runs(metadata_path):
    rows = listing.list_runs(metadata_path)
    assert [r.run_id for r in rows] == list(reversed(RUNS))
    new, old = rows
    assert (new.backbone, new.preset, new.image_size, new.parameters) == ("efficientnet_lite0", "photos", 224,
                                                                           3_413_024)
    assert (new.saved_model_mb, new.cpu_latency_ms) == (14.83, 21.456)
    assert (new.train_seconds, new.fit_seconds, new.device) == (754.2, 701.9, "GPU:0 (NVIDIA H100 80GB HBM3)")
    assert new.pushed_version == "17"
    assert ModelFacts(*(getattr(old, f) for f in ModelFacts().as_dict())) == ModelFacts()

    lines = listing.format_runs(rows).splitlines()
    assert lines[0].split() == list(listing.HEADER)
    cells = dict(zip(listing.HEADER, lines[1].split()))
    assert cells == {"RUN": RUNS[1], "STATE": "COMPLETE", "BACKBONE": "efficientnet_lite0", "PRESET": "photos",
                     "IMAGE": "224", "PARAMS": "3.41M", "MODEL_MB": "14.8", "TRAIN": "12m34s", "CPU_MS": "21.46",
                     "ACCURACY": "—", "KAPPA": "—", "BLESSED": "—", "PUSHED": "17"}
    assert lines[2].split() == [RUNS[0], "COMPLETE"] + ["—"] * 11
    for column in ("IMAGE", "PARAMS", "MODEL_MB", "TRAIN", "CPU_MS", "ACCURACY"):  # right-aligned numbers
        end = lines[0].index(column) + len(column)
        assert {line[end - 1] for line in lines} != {" "}

    listed = json.loads(listing.runs_json(rows))
    expected = {"backbone": "efficientnet_lite0", "preset": "photos", "image_size": 224, "parameters": 3_413_024,
                "saved_model_mb": 14.83, "train_seconds": 754.2, "fit_seconds": 701.9,
                "device": "GPU:0 (NVIDIA H100 80GB HBM3)", "cpu_latency_ms": 21.456}
    assert {key: listed[0][key] for key in expected} == expected
    assert (listed[0]["run_id"], listed[0]["pushed_version"]) == (RUNS[1], "17")
    assert all(listed[1][key] is None for key in ModelFacts().as_dict())


def test_cli_runs_prints_the_comparison(metadata_path, capsys, tmp_path):
    from pipeline import cli

    work_dir = tmp_path / "work"
    (work_dir / "metadata").mkdir(parents=True)
    (work_dir / "metadata" / f"{PipelineConfig().pipeline_name}.sqlite").symlink_to(metadata_path)
    assert cli.main(["runs", "--work-dir", str(work_dir)]) == errors.OK
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == list(listing.HEADER) and "efficientnet_lite0" in out[1]
    assert cli.main(["runs", "--work-dir", str(work_dir), "--json"]) == errors.OK
    assert json.loads(capsys.readouterr().out)[0]["preset"] == "photos"


@pytest.mark.parametrize("count, text", [(None, "—"), (0, "0"), (845, "845"), (12_345, "12.3k"),
                                         (4_010_000, "4.01M"), (2_500_000_000, "2.5G")])
def test_parameters_text(count, text):
    assert listing.parameters_text(count) == text


@pytest.mark.parametrize("seconds, text", [(None, "—"), (0.04, "0.0s"), (42.06, "42.1s"), (59.94, "59.9s"),
                                           (187.4, "3m07s"), (3599.6, "1h00m"), (3725, "1h02m")])
def test_duration_text(seconds, text):
    assert listing.duration_text(seconds) == text


# ----- repeated runs -------------------------------------------------------------------------------------------
def _summary(run_id, accuracy, kappa, blessed=True):
    return RunSummary(run_id=run_id, metrics={"sparse_categorical_accuracy": accuracy, "cohen_kappa": kappa,
                                              "example_count": 24.0}, blessed=blessed, pushed=blessed,
                      pushed_model=f"/serving/vl/{run_id}" if blessed else None)


def test_spread_is_the_mean_and_sample_std():
    values = [0.91, 0.87, 0.93, 0.88, 0.90]
    found = repeats.spread(values + [None, float("nan")])
    assert found.n == 5
    assert found.mean == pytest.approx(np.mean(values))
    assert found.std == pytest.approx(np.std(values, ddof=1)) == pytest.approx(statistics.stdev(values))
    assert found.text() == f"{np.mean(values):.4f} ± {np.std(values, ddof=1):.4f}"
    single = repeats.spread([0.5, None])
    assert (single.mean, single.std, single.text()) == (0.5, None, "0.5000")
    assert repeats.spread([None]) is None


def test_repeat_runs_use_consecutive_seeds_and_report_the_spread_and_the_worst_exit_code():
    config = PipelineConfig().override(["train.seed=7"])
    results = {7: (0, _summary("r7", 0.9, 0.8)), 8: (errors.REPORT_FAILED, _summary("r8", 0.8, 0.7, blessed=False)),
               9: (0, _summary("r9", 0.7, 0.6))}
    seen, announced = [], []

    def run_once(each):
        seen.append(each)
        return results[each.train.seed]

    runs = repeats.repeat_runs(config, 3, run_once, errors.DATA_STOPPED, lambda *a: announced.append(a))
    assert [c.train.seed for c in seen] == [7, 8, 9] and announced == [(1, 3, 7), (2, 3, 8), (3, 3, 9)]
    assert all(c.override(["train.seed=42"]) == config.override(["train.seed=42"]) for c in seen)
    assert [(r.seed, r.run_id, r.accuracy, r.kappa, r.blessed) for r in runs] == [
        (7, "r7", 0.9, 0.8, True), (8, "r8", 0.8, 0.7, False), (9, "r9", 0.7, 0.6, True)]
    assert repeats.worst_exit_code(runs) == errors.REPORT_FAILED

    text = repeats.format_repeats(runs, 3).splitlines()
    assert text[0].split() == ["SEED", "RUN", "ACCURACY", "KAPPA", "VERDICT"]
    assert text[2].split()[:5] == ["8", "r8", "0.8000", "0.7000", "NOT"] and "exit 3" in text[2]
    assert text[4] == f"accuracy: 0.8000 ± {statistics.stdev([0.9, 0.8, 0.7]):.4f} (mean ± sample std over 3 runs)"
    assert text[5] == f"kappa: 0.7000 ± {statistics.stdev([0.8, 0.7, 0.6]):.4f} (mean ± sample std over 3 runs)"
    document = json.loads(repeats.repeats_json(runs, 3))
    assert document["accuracy"] == {"mean": pytest.approx(0.8), "std": pytest.approx(0.1), "n": 3}
    assert document["exit_code"] == errors.REPORT_FAILED and document["requested"] == 3
    assert [r["seed"] for r in document["runs"]] == [7, 8, 9]


def test_a_data_gate_stop_ends_the_repetition_and_its_exit_code_wins():
    calls = []

    def run_once(each):
        calls.append(each.train.seed)
        return (0, _summary("r42", 0.9, 0.8)) if each.train.seed == 42 else (errors.DATA_STOPPED, None)

    runs = repeats.repeat_runs(PipelineConfig(), 5, run_once, errors.DATA_STOPPED)
    assert calls == [42, 43]
    assert repeats.worst_exit_code(runs) == errors.DATA_STOPPED
    text = repeats.format_repeats(runs, 5)
    assert "stopped (exit 4)" in text and "stopped after 2 of 5 runs" in text
    assert "accuracy: 0.9000 (mean ± sample std over 1 run)" in text


def test_repeat_must_be_positive(capsys):
    from pipeline import cli

    assert cli.main(["run", "--data", "/nowhere", "--repeat", "0"]) == errors.USAGE_ERROR
    assert "--repeat must be at least 1" in capsys.readouterr().err
