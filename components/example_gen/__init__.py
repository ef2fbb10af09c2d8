"""Ingestion: turn labelled image folders / CSV manifests / TFRecords into tf.Example TFRecords, quarantining bad
files and records.

* `images` – validates and encodes single images (plain functions);
* `sources` – what a data root holds, how it splits, the (file, label) list per split;
* `records` – TFRecord input: record files, names of integer labels (`labels.txt`), each record read and checked;
* `manifest` – CSV manifests: header detection, path and label columns, attribute tables (multilabel);
* `leakage` – cross-split checks: duplicate content (train/eval leakage), eval classes unseen in training;
* `accounting` – files seen = ingested + quarantined, and the quarantine / leakage reports and ingest summary;
* `options` – the ingestion options carried in ExampleGen's `custom_config`;
* `executor` – the Beam executor that ties them together;
* `component` – `ImageExampleGen`, the custom TFX ExampleGen.
"""
