"""Load a results folder's traces into polars frames (the analysis reads nothing else)."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from skewlab.spec import ExperimentSpec
from skewlab.store import ResultsDir
from skewlab.trace import read_parts, receipt_schema, send_schema


@dataclass
class Traces:
    spec: ExperimentSpec
    sends: pl.DataFrame  # coordinator
    receipts: dict[str, pl.DataFrame]  # worker name → receipts

    @property
    def sources(self) -> list[str]:
        return list(self.spec.sources)


def load(results: ResultsDir) -> Traces:
    spec = ExperimentSpec.model_validate_json(results.spec_path.read_text())
    coord = spec.coordinator.name
    sends = pl.from_arrow(read_parts(results.node_dir(coord), "events", send_schema(spec.sources)))
    receipts = {
        w.name: pl.from_arrow(
            read_parts(results.node_dir(w.name), "events", receipt_schema(spec.sources))
        )
        for w in spec.workers
    }
    assert isinstance(sends, pl.DataFrame)
    return Traces(spec, sends, receipts)  # type: ignore[arg-type]
