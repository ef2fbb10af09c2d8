"""Run records: what ML Metadata recorded about pipeline runs, read once per run.

`store` opens the SQLite store read-only and finds runs; `record` reads one run's executions and artifacts;
`data_health` (ingestion, anomalies, the validation gate's verdict), `evaluation` (TFMA metrics and plots) and
`gates` (thresholds and failures) read what the components wrote; `summary` and `text` are the run summary the CLI
prints. The model report (`pipeline.report`) is built from the same records.
"""
