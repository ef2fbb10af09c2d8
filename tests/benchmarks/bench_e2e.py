"""`make bench-e2e`: time every phase of `make run` on the demo data (fresh, then cached) and record the figures.

Runs the real pipeline three times in a fresh work dir: Beam multi_processing (what `make run` uses), a cached
re-run, and Beam in_memory. Per-component times come from ML Metadata (execution start → last update).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pipeline import demo_data  # noqa: E402
from pipeline.configs import PipelineConfig  # noqa: E402
from pipeline.local_runner import configure_logging, run_local  # noqa: E402
from tests.benchmarks.markdown import machine_line, write_section  # noqa: E402


def _timed(config: PipelineConfig):
    start = time.perf_counter()
    summary = run_local(config)
    return summary, time.perf_counter() - start


def main() -> None:
    """Run the benchmark and print / write its table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", help="Markdown file to update (docs/benchmarks.md)")
    args = parser.parse_args()
    configure_logging(verbose=False)
    data = demo_data.materialize_digits()
    work = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    base = PipelineConfig().override(["preset=demo", f"data.root={data}",  # = make run
                                      f"data.schema_path={demo_data.DEMO_SCHEMA}"])
    runs = []
    for label, overrides in (
        ("multi_processing, fresh", [f"work_dir={work}/mp"]),
        ("multi_processing, cached re-run", [f"work_dir={work}/mp"]),
        ("in_memory, fresh", [f"work_dir={work}/mem", "beam.direct_running_mode=in_memory"]),
    ):
        summary, seconds = _timed(base.override(overrides))
        runs.append((label, summary, seconds))
        print(f"{label}: {seconds:.1f} s", flush=True)
    peak_mb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024

    nodes = [c.node_id for c in runs[0][1].components]
    header = "| component | " + " | ".join(label for label, _, _ in runs) + " |"
    lines = [header, "|---|" + "---:|" * len(runs)]
    for node in nodes:
        cells = []
        for _, summary, _ in runs:
            component = next((c for c in summary.components if c.node_id == node), None)
            cells.append("–" if component is None else
                         ("cached" if component.state == "CACHED" else f"{component.seconds:.1f} s"))
        lines.append(f"| {node} | " + " | ".join(cells) + " |")
    lines.append("| **wall time (whole run)** | " + " | ".join(f"**{s:.1f} s**" for _, _, s in runs) + " |")
    first = runs[0][1]
    metrics = first.metrics
    body = "\n".join([
        "## bench-e2e: `make run` phases on the demo data",
        "",
        machine_line(),
        "",
        f"Demo data: scikit-learn digits, {first.ingest.get('files_seen')} PNG files "
        f"({first.ingest.get('ingested')} ingested, {first.ingest.get('quarantined')} quarantined); "
        f"the demo preset (simple_cnn, 32×32, early stopping). Eval split: {metrics.get('example_count', 0):.0f} "
        f"images; accuracy {metrics.get('sparse_categorical_accuracy', float('nan')):.4f}, "
        f"Cohen's kappa {metrics.get('cohen_kappa', float('nan')):.4f}, blessed: {first.blessed}.",
        "",
        *lines,
        "",
        f"Peak resident memory of the driver process (or its largest child): {peak_mb:.0f} MB. Component times are "
        "ML Metadata execution spans (they exclude the runner's own start-up and the import of TFX). "
        "On a cached re-run the Evaluator runs again because the Resolver now finds a blessed baseline.",
    ])
    print(body)
    if args.out:
        write_section(args.out, "bench-e2e", body)


if __name__ == "__main__":
    main()
