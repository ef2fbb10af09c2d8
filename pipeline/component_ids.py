"""The id of every node of the visionline DAG: `create_pipeline` names its components with these, and whatever reads
a run back from ML Metadata (run records, the report, the schema tool, the Kubeflow compiler) looks them up by them.
Plain strings: importing this module loads no TFX."""

EXAMPLE_GEN = "ImageExampleGen"  # image folders, CSV manifests and TFRecords alike
STATISTICS_GEN = "StatisticsGen"
SCHEMA_GEN = "SchemaGen"
IMPORT_SCHEMA_GEN = "ImportSchemaGen"
EXAMPLE_VALIDATOR = "ExampleValidator"
STATISTICS_BASELINE = "accepted_statistics_resolver"
ACCEPTED_STATISTICS_BASELINE = "AcceptedStatisticsBaseline"  # compiled pipelines' drift baseline: the store's newest
VALIDATION_GATE = "ValidationGate"
TRANSFORM = "Transform"
TUNER = "Tuner"
TRAINER = "Trainer"
MODEL_BASELINE = "latest_blessed_model_resolver"
SERVED_BASELINE = "ServedModelBaseline"  # compiled pipelines' baseline: the model served now
EVALUATOR = "Evaluator"
PUSHER = "Pusher"
