"""Ingestion: turn labelled image folders / CSV manifests into tf.Example TFRecords, quarantining bad files.

`images` validates and encodes single images (plain functions), `sources` lists what a data root holds and
how it splits, and `example_gen` is the custom TFX ExampleGen (a Beam job) that ties them together.
"""
