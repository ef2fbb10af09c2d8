"""`LatestAcceptedStatisticsStrategy`: the resolver strategy that gives the validation gate its drift baseline —
the ExampleStatistics of the newest `DataVerdict` the gate accepted (see `component`)."""

from __future__ import annotations

from typing import Any

from tfx import types
from tfx.dsl.components.common import resolver

from components.validation_gate.executor import ACCEPTED, STATISTICS_ID


class LatestAcceptedStatisticsStrategy(resolver.ResolverStrategy):
    """Resolver strategy: the ExampleStatistics of the newest `DataVerdict` with `accepted=1`.

    Use with `statistics=Channel(type=ExampleStatistics)` and `verdict=Channel(type=DataVerdict)`; both keys come
    back empty when no run has passed the gate yet (like `LatestBlessedModelStrategy` without a blessed model).
    """

    def resolve_artifacts(self, store: Any, input_dict: dict[str, list[types.Artifact]]
                          ) -> dict[str, list[types.Artifact]] | None:
        """Pick the statistics the latest accepted verdict names."""
        statistics = {a.id: a for a in input_dict.get("statistics", [])}
        for verdict in sorted(input_dict.get("verdict", []), key=lambda a: a.id, reverse=True):
            if verdict.get_int_custom_property(ACCEPTED) == 1:
                accepted = statistics.get(verdict.get_int_custom_property(STATISTICS_ID))
                if accepted is not None:
                    return {"statistics": [accepted], "verdict": [verdict]}
        return {"statistics": [], "verdict": []}
