"""A labelled data root as raw tf.Examples, exactly as ingestion builds them: the files are listed by
`components.example_gen.sources`, every file is checked by `images.prepare_image` (EXIF orientation applied,
TIFF/WebP as PNG, as at ingestion) and becomes an Example with `images.make_example`; a file ingestion would
quarantine is listed with its reason, never dropped silently.

Layouts: class folders (`<root>/<class>/<image>`), a train/test tree (its test split is read), or a CSV manifest
(`path,label`; for multilabel models the only layout, labels separated by `|`). TFRecord data roots are refused:
their Examples can be evaluated by a pipeline run.
"""

from __future__ import annotations

import csv
import os
from collections import Counter
from dataclasses import dataclass, field

import tensorflow as tf

from components.example_gen import images, manifest, sources

QUARANTINE_REPORT = "quarantine_report.csv"


@dataclass
class ExampleSet:
    """What a data root gave: the TFRecord of accepted Examples, its counts, and the quarantined files."""

    data_root: str
    tfrecord: str
    layout: str  # what was read, in words ("class folders", "the 'test' split of a train/test tree", "CSV manifest")
    files_seen: int = 0
    ingested: int = 0
    class_counts: dict[str, int] = field(default_factory=dict)  # label -> ingested examples carrying it
    quarantined: list[dict[str, str]] = field(default_factory=list)  # path, label, split, reason

    @property
    def labels(self) -> set[str]:
        """Every label of an ingested example."""
        return set(self.class_counts)

    def quarantined_by_reason(self) -> dict[str, int]:
        """Reason → files."""
        return dict(Counter(row["reason"] for row in self.quarantined).most_common())


def list_sources(data_root: str, multilabel: bool, options: manifest.ManifestOptions | None = None,
                 ) -> tuple[list[sources.Source], list[sources.Rejected], str]:
    """The labelled files of `data_root` (the test split of a train/test tree), the entries rejected while
    listing, and the layout in words; `sources.DataLayoutError` naming the path when it cannot be used. `options`:
    how a CSV manifest is read (the config's data.path_column, label_column, manifest_kind, image_dir, split_column:
    then only its test rows)."""
    layout = sources.detect_layout(data_root)
    if layout.format == "csv":  # with data.split_column: its test rows
        layout = manifest.with_split_column(layout, options or manifest.ManifestOptions(), multilabel)
    if layout.format == "tfrecord":
        raise sources.DataLayoutError(f"data root {data_root} holds TFRecords: evaluate reads images (class "
                                      "folders or a CSV manifest)")
    if multilabel and layout.format != "csv":
        raise sources.DataLayoutError(f"data root {data_root} is read as {layout.format}: "
                                      f"{sources.MULTILABEL_NEEDS_CSV}")
    split, pattern = next((name, p) for name, p in layout.split_patterns.items() if name in ("eval", "all"))
    if layout.format == "csv":
        listed, rejected = manifest.list_csv_sources(layout.input_base, pattern, split, multilabel, options)
        described = "the test rows of a CSV manifest (data.split_column)" if split == "eval" else "CSV manifest"
    else:
        listed, rejected = sources.list_folder_sources(layout.input_base, pattern, split)
        described = "class folders" if split == "all" else f"the '{os.path.dirname(os.path.dirname(pattern))}' " \
                                                           "split of a train/test tree"
    return listed, rejected, described


def write_examples(data_root: str, tfrecord: str, multilabel: bool = False,
                   max_image_pixels: int = images.MAX_IMAGE_PIXELS,
                   options: manifest.ManifestOptions | None = None) -> ExampleSet:
    """Check every file of `data_root` as ingestion does and write the accepted ones as raw tf.Examples to
    `tfrecord` (uncompressed); `sources.DataLayoutError` when no file could be used. `options`: how a CSV manifest
    is read (default: its columns found by name)."""
    listed, rejected, layout = list_sources(data_root, multilabel, options)
    found = ExampleSet(data_root=data_root, tfrecord=tfrecord, layout=layout,
                       files_seen=len(listed) + len(rejected), quarantined=[r.to_record() for r in rejected])
    counts: Counter[str] = Counter()
    os.makedirs(os.path.dirname(os.path.abspath(tfrecord)), exist_ok=True)
    with tf.io.TFRecordWriter(tfrecord) as writer:
        for source in listed:
            try:
                with tf.io.gfile.GFile(source.path, "rb") as handle:
                    data = handle.read()
                prepared = images.prepare_image(data, max_image_pixels)  # as ingestion: EXIF, TIFF/WebP to PNG
                labels = sources.split_labels(source.label, multilabel)
                example = images.make_example(prepared.data, labels if multilabel else source.label,
                                              source.relative_path, prepared.info)
            except images.Quarantined as refused:
                found.quarantined.append(_row(source, refused.reason))
                continue
            except (OSError, tf.errors.OpError) as err:
                found.quarantined.append(_row(source, f"cannot read file: {err}"))
                continue
            writer.write(example.SerializeToString())
            counts.update(labels)
            found.ingested += 1
    found.class_counts = dict(sorted(counts.items()))
    if not found.ingested:
        examples = "; ".join(f"{row['path']}: {row['reason']}" for row in found.quarantined[:3])
        raise sources.DataLayoutError(f"no usable image under {data_root}"
                                      + (f" ({len(found.quarantined)} quarantined, e.g. {examples})"
                                         if found.quarantined else ""))
    return found


def write_quarantine_report(found: ExampleSet, path: str) -> str:
    """The quarantined files as a CSV (path, label, split, reason), like ingestion's quarantine report."""
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "split", "reason"])
        writer.writeheader()
        writer.writerows(found.quarantined)
    return path


def _row(source: sources.Source, reason: str) -> dict[str, str]:
    return sources.Rejected(source.relative_path, source.label, source.split, reason).to_record()
