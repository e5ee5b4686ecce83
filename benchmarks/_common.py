"""What the benchmark scripts share: where results go, and how a result file is written."""

from __future__ import annotations

from pathlib import Path

from periface.evaluation.report import write_json

RESULTS = Path(__file__).resolve().parents[1] / "results"


def write_result(name: str, doc: dict) -> Path:
    return write_json(RESULTS / f"{name}.json", {"benchmark": name} | doc)
