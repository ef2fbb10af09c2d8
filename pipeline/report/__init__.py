"""The model report: one self-contained HTML page (plus a short Markdown summary) per pipeline run, and the run
listing behind `visionline runs`.

Three steps, kept apart so each can be used and tested alone: `collect` reads a run record (`pipeline.runs`) and
its artifacts into the plain `data.ReportData` (`samples` runs the candidate SavedModel on eval images); `render`
turns that data into HTML and Markdown through the Jinja2 templates in `templates/`, with `charts` drawing the
pictures; `build` writes `<pipeline_root>/reports/<run id>/report.html` and `summary.md`. `listing` lists runs.
"""
