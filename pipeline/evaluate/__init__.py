"""`visionline evaluate`: a pushed model evaluated on a labelled folder that was not part of any pipeline run.

`examples` turns the folder (class folders, a train/test tree's test split, or a CSV manifest) into raw
tf.Examples with ingestion's own code, quarantining what ingestion would; `analysis` runs TFMA with the pipeline's
EvalConfig on them and reads the result into the model report's data; `render` writes the HTML and Markdown report.
"""
