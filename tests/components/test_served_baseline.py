"""The served model as the Evaluator's baseline without ML Metadata: which version is served
(`serving_layout.latest_complete_version`), the ServedModelBaseline executor's snapshot, and the Evaluator executor
treating an empty one as no baseline."""

from __future__ import annotations

from tfx.dsl.io import fileio
from tfx.types import standard_artifacts
from tfx.utils import path_utils

from components.evaluator.executor import without_empty_baseline
from components.pusher import serving_layout
from components.served_baseline import executor


def _version(base, name, complete=True):
    path = base / name
    path.mkdir(parents=True)
    (path / "saved_model.pb").write_bytes(b"graph " + name.encode())
    if complete:
        (path / "variables").mkdir()
        (path / "variables" / "variables.index").write_bytes(b"weights")
    return path


def test_the_served_version_is_the_newest_complete_one(tmp_path):
    base = tmp_path / "serving" / "visionline"
    assert serving_layout.latest_complete_version(str(base)) is None  # nothing pushed yet
    base.mkdir(parents=True)
    assert serving_layout.latest_complete_version(str(base)) is None
    _version(base, "9")
    _version(base, "10")  # newer: 10 > 9 as numbers, not as strings
    _version(base, "12", complete=False)  # a push still being copied (or broken): not served
    (base / ".13.partial").mkdir()  # the Pusher's staging folder
    (base / "latest").mkdir()
    assert serving_layout.latest_complete_version(str(base)) == ("10", str(base / "10"))
    assert serving_layout.latest_complete_version(str(base), fileio) == ("10", str(base / "10"))


def _run(base, tmp_path):
    model = standard_artifacts.Model()
    model.uri = str(tmp_path / "out" / "baseline_model")
    executor.Executor().Do({}, {executor.OUTPUT: [model]}, {executor.BASE_DIRECTORY: str(base)})
    return model


def test_executor_snapshots_the_served_model_where_the_evaluator_reads_it(tmp_path):
    base = tmp_path / "serving" / "visionline"
    _version(base, "1700000000")
    _version(base, "1700000500")
    model = _run(base, tmp_path)
    copied = path_utils.serving_model_path(model.uri)
    assert open(f"{copied}/saved_model.pb", "rb").read() == b"graph 1700000500"
    assert open(f"{copied}/variables/variables.index", "rb").read() == b"weights"
    assert model.get_int_custom_property(executor.SERVED) == 1
    assert model.get_string_custom_property(executor.SERVED_VERSION) == "1700000500"
    assert model.get_string_custom_property(executor.SERVED_PATH) == str(base / "1700000500")


def test_nothing_served_gives_an_empty_baseline_the_evaluator_ignores(tmp_path):
    model = _run(tmp_path / "serving" / "visionline", tmp_path)
    assert model.has_custom_property(executor.SERVED) and model.get_int_custom_property(executor.SERVED) == 0
    assert not fileio.exists(path_utils.serving_model_dir(model.uri))
    candidate, resolved = standard_artifacts.Model(), standard_artifacts.Model()  # resolved: a Resolver's baseline
    inputs = {"model": [candidate], "baseline_model": [model]}
    assert without_empty_baseline(inputs) == {"model": [candidate], "baseline_model": []}
    assert without_empty_baseline({"model": [candidate], "baseline_model": [resolved]})["baseline_model"] == [resolved]
    served = _run(_version(tmp_path / "other", "5").parent, tmp_path / "second")
    assert without_empty_baseline({"model": [candidate], "baseline_model": [served]})["baseline_model"] == [served]
