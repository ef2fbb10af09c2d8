"""Tests for pipeline.configs and the CLI's config resolution."""

from __future__ import annotations

import json
import os

import pytest

from pipeline import cli, presets
from pipeline.configs import ConfigError, PipelineConfig


def test_defaults_validate_once_data_root_is_set(tmp_path):
    config = PipelineConfig().override([f"data.root={tmp_path}"]).validate()
    assert config.preset == "default" and config.train.model == "efficientnet_lite0"  # photos: transfer learning
    assert config.transform.image_size == 0 and config.resolved_image_size() == 224  # the backbone's native size
    assert config.beam.pipeline_args() == [
        "--runner=DirectRunner", "--direct_running_mode=multi_processing", "--direct_num_workers=2",
        "--sdk_container_image=apache/beam_python3.11_sdk:2.61.0",  # Beam's default; the DirectRunner never pulls it
    ]


@pytest.mark.parametrize("extra", [[], ["--extra_package=/opt/wheels/acme.tar.gz"], ["--setup_file", "setup.py"]])
def test_tfx_builds_no_package_of_itself_for_the_direct_runner(tmp_path, extra):
    from tfx.utils import dependency_utils

    config = PipelineConfig().override([f"data.root={tmp_path}", f"beam.extra_args={json.dumps(extra)}"]).validate()
    args = config.beam.pipeline_args()
    assert dependency_utils.make_beam_dependency_flags(args) == args  # unchanged: no tfx_ephemeral sdist built
    assert sum(arg.startswith("--sdk_container_image") for arg in args) == (0 if extra else 1)


def test_other_runners_get_no_container_image_they_were_not_given(tmp_path):
    config = PipelineConfig().override([f"data.root={tmp_path}", "beam.runner=FlinkRunner"]).validate()
    assert not any(arg.startswith("--sdk_container_image") for arg in config.beam.pipeline_args())


def test_empty_data_root_is_a_named_error():
    with pytest.raises(ConfigError, match="data.root"):
        PipelineConfig().validate()


@pytest.mark.parametrize(
    ("assignment", "field"),
    [
        ("transform.image_size=4", "transform.image_size"),
        ("data.train_fraction=1.0", "data.train_fraction"),
        ("transform.normalization=bogus", "transform.normalization"),
        ("beam.direct_running_mode=threads", "beam.direct_running_mode"),
        ("model_name=../etc", "model_name"),
        ("train.dropout=1.5", "train.dropout"),
        ("train.cnn_pooling=max", "train.cnn_pooling"),
        ("train.cnn_block_dropout=1", "train.cnn_block_dropout"),
        ("train.lr_schedule=step", "train.lr_schedule"),
        ("train.early_stopping_monitor=val_auc", "train.early_stopping_monitor"),
        ("train.fine_tune=1.0", "train.fine_tune"),  # a bare number: "all" or one layer? refused
        ("train.fine_tune=half", "train.fine_tune"),
        ("train.augment_crop=1", "train.augment_crop"),
        ("train.augment_color=0.9", "train.augment_color"),
        ("train.label_smoothing=0.5", "train.label_smoothing"),
        ("train.warmup_epochs=-1", "train.warmup_epochs"),
        ("train.device=tpu", "train.device"),
        ("train.mixed_precision=yes", "train.mixed_precision"),
        ("transform.image_size=2000", "transform.image_size"),
        ("preset=huge", "preset"),
        ("data.min_image_side=0", "data.min_image_side"),
        ("data.transcode=maybe", "data.transcode"),
        ("train.positive_class=cat", "train.positive_class"),  # only for train.task=binary
        ("eval.max_tflite_accuracy_drop=1.5", "eval.max_tflite_accuracy_drop"),
        ("eval.max_tflite_accuracy_drop=-0.1", "eval.max_tflite_accuracy_drop"),
        ("train.tflite_eval_images=0", "train.tflite_eval_images"),
        ("keep_runs=-1", "keep_runs"),
    ],
)
def test_invalid_values_name_the_field(tmp_path, assignment, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        PipelineConfig().override([f"data.root={tmp_path}", assignment]).validate()


def test_cosine_schedule_and_plateau_reduction_are_exclusive(tmp_path):
    base = PipelineConfig().override([f"data.root={tmp_path}", "train.lr_schedule=cosine"])
    base.validate()
    with pytest.raises(ConfigError, match=r"train\.lr_schedule.*reduce_lr_patience"):
        base.override(["train.reduce_lr_patience=2"]).validate()


def test_unknown_fields_and_bad_types_are_rejected():
    with pytest.raises(ConfigError, match="train.epoch"):
        PipelineConfig().override(["train.epoch=3"])
    with pytest.raises(ConfigError, match="nosuch"):
        PipelineConfig.from_dict({"nosuch": {"a": 1}})
    with pytest.raises(ConfigError, match="train.epochs"):
        PipelineConfig().override(["train.epochs=many"])
    with pytest.raises(ConfigError, match="key=value"):
        PipelineConfig().override(["train.epochs"])


def test_yaml_file_round_trip(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(
        "data:\n  root: /data/simpsons\ntrain:\n  epochs: 7\n  conv_filters: [8, 16]\nenable_cache: false\n"
    )
    config = PipelineConfig.load(path)
    assert config.data.root == "/data/simpsons"
    assert config.train.epochs == 7 and config.train.conv_filters == (8, 16)
    assert config.enable_cache is False
    assert PipelineConfig.from_dict(config.to_dict()) == config


def test_paths_are_absolute_and_layout_follows_tf_serving(tmp_path):
    config = PipelineConfig().override(["work_dir=rel/work", "model_name=dogs"])
    assert os.path.isabs(config.pipeline_root) and config.pipeline_root.endswith("rel/work/pipelines/visionline")
    assert config.push_base.endswith("rel/work/serving/dogs")
    assert PipelineConfig().override(["serving_root=gs://bucket/models"]).push_base == "gs://bucket/models/visionline"


def test_cli_flags_override_file_and_set_wins(tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"train": {"epochs": 2}, "eval": {"min_kappa": 0.1}}))
    code = cli.main(["config", "--config", str(path), "--data", str(tmp_path), "--min-kappa", "0.6",
                     "--epochs", "9", "--set", "train.epochs=11", "--in-memory", "--no-cache"])
    assert code == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["train"]["epochs"] == 11
    assert shown["eval"]["min_kappa"] == 0.6
    assert shown["beam"]["direct_running_mode"] == "in_memory"
    assert shown["enable_cache"] is False
    assert shown["data"]["root"] == str(tmp_path)


def test_cli_reports_config_errors_with_exit_code_2(capsys):
    assert cli.main(["config", "--set", "train.epochs=zero"]) == 2
    assert "train.epochs" in capsys.readouterr().err


def test_cli_demo_data_writes_class_folders(tmp_path, capsys):
    assert cli.main(["demo-data", str(tmp_path / "d"), "--per-class", "2"]) == 0
    folders = sorted(p.name for p in (tmp_path / "d").iterdir())
    assert folders == [str(i) for i in range(10)]
    assert all(len(list((tmp_path / "d" / f).glob("*.png"))) == 2 for f in folders)


def test_demo_flag_uses_the_curated_schema(capsys):
    assert cli.main(["config", "--demo"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["data"]["schema_path"].endswith("schema/digits/schema.pbtxt")


def test_demo_data_lives_under_the_work_dir(tmp_path, capsys):
    assert cli.main(["config", "--demo", "--work-dir", str(tmp_path / "w")]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["data"]["root"] == str(tmp_path / "w" / "data" / "digits")
    assert sorted(p.name for p in (tmp_path / "w" / "data" / "digits").iterdir()) == [str(i) for i in range(10)]
    assert cli.main(["config", "--demo", "--work-dir", str(tmp_path / "w"), "--data", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out)["data"]["root"] == str(tmp_path)  # an explicit --data still wins


def test_curated_demo_schema_matches_the_demo_classes():
    import tensorflow_data_validation as tfdv

    from pipeline.demo_data import DEMO_SCHEMA

    schema = tfdv.load_schema_text(DEMO_SCHEMA)
    domain = tfdv.get_domain(schema, "label")
    assert list(domain.value) == [str(d) for d in range(10)]
    assert {f.name for f in schema.feature} == {"image", "label", "path", "format", "width", "height"}


def test_cli_weights_converts_once_into_the_cache(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("VISIONLINE_CACHE", str(tmp_path))
    assert cli.main(["weights"]) == 0
    paths = capsys.readouterr().out.split()
    assert paths == [str(tmp_path / f"efficientnet_lite{n}_imagenet.h5") for n in (0, 1, 2)]
    assert all(os.path.getsize(path) > 10_000_000 for path in paths)
    stamps = [os.path.getmtime(path) for path in paths]
    assert cli.main(["weights"]) == 0 and capsys.readouterr().out.split() == paths
    assert [os.path.getmtime(path) for path in paths] == stamps  # cached: not converted again


def test_a_preset_is_a_layer_of_values_under_the_users(tmp_path):
    fast = PipelineConfig().override(["preset=fast"])
    assert fast.preset == "fast"
    for dotted, value in presets.PRESETS["fast"].items():
        section, key = dotted.split(".")
        assert getattr(getattr(fast, section), key) == value
    mine = PipelineConfig().override(["preset=fast", "transform.image_size=96"])
    assert mine.transform.image_size == 96  # an explicit value wins over the preset's
    assert mine.train.fine_tune_epochs == presets.PRESETS["fast"]["train.fine_tune_epochs"]
    swapped = mine.override(["preset=accurate"])  # the new preset's values; the user's own value stays
    assert swapped.train.model == presets.PRESETS["accurate"]["train.model"] and swapped.transform.image_size == 96
    back = swapped.override(["preset=default"])
    assert back.train.model == PipelineConfig().train.model and back.transform.image_size == 96


def test_preset_from_a_file_and_flags(tmp_path, capsys):
    path = tmp_path / "config.yaml"
    path.write_text("preset: demo\ntrain:\n  epochs: 3\n")
    config = PipelineConfig.load(path)
    assert (config.preset, config.train.model, config.train.epochs) == ("demo", "simple_cnn", 3)
    assert config.override(["preset=default"]).train.epochs == 3  # the file's value survives a preset change
    assert cli.main(["config", "--config", str(path), "--preset", "fast"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["preset"], shown["train"]["epochs"]) == ("fast", 3)
    assert cli.main(["config", "--demo", "--preset", "fast"]) == 0  # a named preset wins over --demo's
    assert json.loads(capsys.readouterr().out)["preset"] == "fast"


def test_every_preset_resolves_and_validates(tmp_path):
    for name in presets.names():
        config = PipelineConfig().override([f"preset={name}", f"data.root={tmp_path}"]).validate()
        assert config.preset == name and config.resolved_image_size() >= 8


def test_demo_preset_keeps_the_small_cnn(tmp_path, capsys):
    assert cli.main(["config", "--demo", "--work-dir", str(tmp_path / "w")]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["preset"] == "demo" and shown["train"]["model"] == "simple_cnn"
    assert shown["transform"]["image_size"] == 32 and shown["train"]["fine_tune"] == "none"


def test_renamed_fine_tune_field_says_so():
    with pytest.raises(ConfigError, match=r"train\.fine_tune_layers.*renamed: train\.fine_tune"):
        PipelineConfig().override(["train.fine_tune_layers=0.3"])
    with pytest.raises(ConfigError, match=r"renamed: train\.fine_tune"):
        PipelineConfig.from_dict({"train": {"fine_tune_layers": 1.0}})


def test_default_kappa_gate_is_relative_to_chance():
    """Kappa corrects for chance: the default bound refuses a 10-class model at accuracy 0.517 (κ 0.463, the
    simple CNN on CIFAR-10 photos that the old defaults blessed) without any per-dataset tuning."""
    assert PipelineConfig().eval.min_kappa == 0.6
    accuracy, chance = 0.517, 0.1
    assert (accuracy - chance) / (1 - chance) < PipelineConfig().eval.min_kappa


def test_label_names_name_tfrecord_integer_labels(tmp_path):
    config = PipelineConfig().override([f"data.root={tmp_path}", "data.label_names=[cat, dog]"]).validate()
    assert config.data.label_names == ["cat", "dog"] and config.to_dict()["data"]["label_names"] == ["cat", "dog"]
    assert PipelineConfig().data.label_names == []
    for names in ("[cat, cat]", "['cat', ' ']"):
        with pytest.raises(ConfigError, match=r"data\.label_names must be distinct, non-empty"):
            PipelineConfig().override([f"data.root={tmp_path}", f"data.label_names={names}"]).validate()
    with pytest.raises(ConfigError, match=r"data\.label_names must be empty with data\.format=folders"):
        PipelineConfig().override([f"data.root={tmp_path}", "data.format=folders",
                                   "data.label_names=[cat, dog]"]).validate()


def test_class_selection_settings_are_validated_by_name(tmp_path):
    config = PipelineConfig().override([f"data.root={tmp_path}", "data.classes=[photo, not_photo]",
                                        "data.exclude_classes=[blurry]",
                                        "data.class_map={portrait: photo, map: not_photo, 7: not_photo}"])
    assert config.data.class_map == {"portrait": "photo", "map": "not_photo", "7": "not_photo"}
    assert config.data.classes == ["photo", "not_photo"] and config.data.exclude_classes == ["blurry"]
    for assignments, message in [
        (["data.class_map=[a, b]"], "data.class_map: cannot use"),
        (["data.class_map={a: ''}"], "config field data.class_map must map folder"),
        (["data.exclude_classes=[a]", "data.class_map={a: b}"], "data.class_map maps \\['a'\\], which "
                                                                 "data.exclude_classes leaves out"),
        (["data.classes=[a]", "train.task=multilabel", "data.format=csv"], "apply to multiclass and binary"),
        (["data.classes=[a, b]", "train.task=binary", "train.positive_class=c"],
         "train.positive_class 'c' must be one of data.classes"),
    ]:
        with pytest.raises(ConfigError, match=message):
            PipelineConfig().override([f"data.root={tmp_path}", *assignments]).validate()
