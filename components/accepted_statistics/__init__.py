"""The drift baseline of compiled pipelines without ML Metadata: statistics the ValidationGate accepted, kept under
the pipeline root (`store`), and `AcceptedStatisticsBaseline`, the task that reads the newest of them before the
gate (`component`; `executor`: the copy)."""
