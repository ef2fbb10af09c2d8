"""Writing the report of a run: `report.html` and `summary.md` into `<pipeline_root>/reports/<run id>/` (or a
folder of the caller's choice), from ML Metadata (`build_report`) or from collected data (`write_report`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipeline.configs import ReportConfig
from pipeline.report.collect import collect
from pipeline.report.data import ReportData
from pipeline.report.label_issues import LabelIssueSettings
from pipeline.report.mislabelled import write_csv
from pipeline.report.render import HTML_NAME, MARKDOWN_NAME, render_html, render_markdown
from pipeline.runs.record import read_run
from pipeline.runs.store import sanitize_run_id


@dataclass
class ReportPaths:
    """Where `build_report` wrote the report."""

    run_id: str
    out_dir: str
    html: str
    markdown: str
    label_issues_csv: str = ""  # label_issues.csv beside report.html ("" when the search did not run)
    label_issue_count: int = 0  # likely mislabelled training images listed in it

    def label_issues_line(self) -> str:
        """One console line about the likely mislabelled training images ("" when none were looked for)."""
        if not self.label_issues_csv:
            return ""
        return f"likely mislabelled training images: {self.label_issue_count} (for review: {self.label_issues_csv})"


def write_report(data: ReportData, out_dir: str) -> ReportPaths:
    """Render `data` and write `report.html` and `summary.md` into `out_dir` (and `label_issues.csv` when the
    search for likely mislabelled training images ran)."""
    os.makedirs(out_dir, exist_ok=True)
    found = data.label_issues
    csv_path = write_csv(found, out_dir) if found is not None and not found.skipped else ""
    html_path = os.path.join(out_dir, HTML_NAME)
    markdown_path = os.path.join(out_dir, MARKDOWN_NAME)
    Path(html_path).write_text(render_html(data), encoding="utf-8")
    Path(markdown_path).write_text(render_markdown(data), encoding="utf-8")
    return ReportPaths(run_id=data.run_id, out_dir=out_dir, html=html_path, markdown=markdown_path,
                       label_issues_csv=csv_path, label_issue_count=len(found.candidates) if csv_path else 0)


def label_issue_settings(report: ReportConfig) -> LabelIssueSettings:
    """The config's `report.label_issues*` fields as the label-issue search's settings."""
    return LabelIssueSettings(enabled=report.label_issues, max_images=report.label_issues_max_images,
                              folds=report.label_issues_folds, ranking=report.label_issues_ranking,
                              shown=report.label_issues_shown)


def build_report(metadata_path: str, out_dir: str | None = None, run_id: str | None = None,
                 settings: ReportConfig | None = None) -> ReportPaths:
    """Collect the latest (or given) run from ML Metadata and write its report (`settings`: the config's `report`
    section, default `ReportConfig()`).

    `out_dir` defaults to `<pipeline_root>/reports/<run id, sanitised>/`, the pipeline root being derived from
    the run's artifact URIs (`<pipeline_root>/<component>/<output>/<execution id>`).
    """
    record = read_run(metadata_path, run_id)
    data = collect(record, label_issues=label_issue_settings(settings or ReportConfig()))
    if out_dir is None:
        root = record.pipeline_root() or os.path.join(os.path.dirname(os.path.dirname(metadata_path)), "pipelines")
        out_dir = os.path.join(root, "reports", sanitize_run_id(record.run_id))
    return write_report(data, out_dir)
