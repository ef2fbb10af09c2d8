"""ServedModelBaseline: the model the push destination serves now, as the Evaluator's baseline, without ML Metadata
(`component`: the TFX component; `executor`: reading and copying it)."""
