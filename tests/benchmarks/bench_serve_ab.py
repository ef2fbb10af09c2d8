"""Serving A/B: the same model behind two local servers that differ only in some `visionline serve` flags, both up
at once and measured in alternation (A then B, then B then A, …), so a noisy host's drift falls on both alike.
Separate `bench_serve.py` runs one after the other cannot tell a 10-20 % difference from that drift. Not
collected by pytest.

    TF_USE_LEGACY_KERAS=1 .venv/bin/python tests/benchmarks/bench_serve_ab.py \\
        --b-arg=--tensorflow-intra-op-parallelism=1 [--rounds 8] [--model-base PATH]

Per round and server: gRPC Predict at concurrency 1 with the official blocking stub (p50, and the server's own
mean handler time from its Prometheus page), then h2load at concurrency 32 against REST and gRPC (req/s).
Prints the median and range over the rounds of each figure. Needs h2load (`make system-deps`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.benchmarks.bench_serve import (  # noqa: E402
    ServerProcess,
    bench_blocking_grpc,
    bench_h2load,
    demo_png,
)

FIGURES = {
    "c1_p50": "gRPC p50 ms, c=1 (blocking stub)",
    "c1_server": "server mean ms, c=1",
    "rest32": "REST req/s, c=32 (h2load)",
    "grpc32": "gRPC req/s, c=32 (h2load)",
}


def main(argv: list[str] | None = None) -> int:
    from pipeline.configs import PipelineConfig
    from tests.benchmarks.h2load import h2load_binary

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-base", default=PipelineConfig().push_base)
    parser.add_argument("--a-arg", action="append", default=[], metavar="FLAG", help="flags of server A (default none)")
    parser.add_argument("--b-arg", action="append", default=[], metavar="FLAG", required=True,
                        help="flags of server B, e.g. --b-arg=--tensorflow-intra-op-parallelism=1")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--requests", type=int, default=300, help="requests per figure per round")
    args = parser.parse_args(argv)
    if h2load_binary() is None:
        raise SystemExit("h2load not found: `make system-deps` (Debian nghttp2-client)")

    png = demo_png()
    base = Path(args.model_base).resolve()
    names = {"A": " ".join(args.a_arg) or "(defaults)", "B": " ".join(args.b_arg)}
    servers: dict[str, ServerProcess] = {}
    try:
        servers["A"] = ServerProcess(base, args.a_arg)
        servers["B"] = ServerProcess(base, args.b_arg)
        figures: dict[str, dict[str, list[float]]] = {k: {f: [] for f in FIGURES} for k in servers}
        for round_ in range(args.rounds):
            for key in ("A", "B") if round_ % 2 == 0 else ("B", "A"):
                stub = bench_blocking_grpc(servers[key], "off", png, args.requests, 1)[0]
                rest, grpc_ = bench_h2load(servers[key], "off", png, [32], args.requests, 1)
                for name, value in (("c1_p50", stub.percentile(50)), ("c1_server", stub.server_ms),
                                    ("rest32", rest.throughput), ("grpc32", grpc_.throughput)):
                    figures[key][name].append(float("nan") if value is None else value)
                print(f"round {round_ + 1} {key}: " + ", ".join(f"{FIGURES[f]} {v[-1]:.2f}"
                                                             for f, v in figures[key].items()),
                      file=sys.stderr, flush=True)
    finally:
        for server in servers.values():
            server.stop()

    print(f"{args.rounds} rounds, alternating; median (min–max) per figure\n")
    print("| server | " + " | ".join(FIGURES.values()) + " |")
    print("|---|" + "---:|" * len(FIGURES))
    for key, values in figures.items():
        cells = [f"{statistics.median(v):.2f} ({min(v):.2f}–{max(v):.2f})" for v in values.values()]
        print(f"| {key}: `{names[key]}` | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
