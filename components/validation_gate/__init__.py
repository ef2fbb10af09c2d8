"""The data validation gate: a custom TFX component between ExampleValidator and Transform.

* `checks` – the checks on TFDV statistics and anomaly protos (no TFX): `Problem`, `Verdict`, `DataValidationError`;
* `executor` – runs them on the gate's artifacts, publishes the verdict or stops the run;
* `component` – `ValidationGate` and its `DataVerdict` artifact type;
* `resolver` – `LatestAcceptedStatisticsStrategy`, the drift baseline: statistics of the last accepted verdict.
"""
