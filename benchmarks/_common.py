"""Shared helpers for the benchmark scripts: pipelines by name, progress bars, result files."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

RESULTS = Path(__file__).resolve().parents[1] / "results"


from periface.evaluation.pipelines import build_pipelines  # noqa: E402,F401  (re-exported for the scripts)


from periface.evaluation.report import Bars  # noqa: E402,F401


def write_result(name: str, doc: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    doc = {"benchmark": name, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": {
        "cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform()}} | doc
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(doc, indent=1))
    return path
