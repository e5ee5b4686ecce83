"""Writing evaluation results: JSON, PNG plots and one self-contained HTML page; progress bars while running."""

from __future__ import annotations

import base64
import html
import json
import os
import platform
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


class Bars:
    """``with Bars() as bars: tick = bars("name", total); tick()`` — one rich progress bar per pipeline."""

    def __init__(self) -> None:
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), transient=False, console=Console(stderr=True))

    def __enter__(self) -> "Bars":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)

    def __call__(self, name: str, total: int):
        task = self.progress.add_task(name, total=total)
        return lambda: self.progress.advance(task)


def machine() -> dict:
    return {"cpus": os.cpu_count(), "python": sys.version.split()[0], "platform": platform.platform()}


def write_json(path: Path, doc: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": machine()} | doc
    path.write_text(json.dumps(doc, indent=1))
    return path


def write_html(path: Path, title: str, tables: list[tuple[str, list[str], list[list[str]]]], images: list[Path],
               notes: list[str] = ()) -> Path:
    """A single HTML file: captioned tables, the plots inlined as base64 PNG, and notes."""
    parts = [f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>",
             "<style>body{font:14px system-ui;margin:2em;max-width:980px}table{border-collapse:collapse;margin:1em 0}"
             "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f3f3f3}"
             "td:first-child{text-align:left}img{max-width:100%}</style>", f"<h1>{html.escape(title)}</h1>",
             f"<p>{html.escape(time.strftime('%Y-%m-%d %H:%M'))} on {html.escape(json.dumps(machine()))}</p>"]
    for caption, header, rows in tables:
        parts.append(f"<table><caption>{html.escape(caption)}</caption><tr>"
                     + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr>")
        parts += ["<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows]
        parts.append("</table>")
    for img in images:
        if img.exists():
            data = base64.b64encode(img.read_bytes()).decode()
            parts.append(f"<p><img alt='{html.escape(img.name)}' src='data:image/png;base64,{data}'></p>")
    parts += [f"<p>{html.escape(n)}</p>" for n in notes]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts))
    return path


def pct(x: float) -> str:
    return f"{100 * x:.2f}%"


def pct_or_dash(x: float | None) -> str:
    """``pct``, or "-" where there is nothing to measure (None or NaN)."""
    return "-" if x is None or x != x else pct(x)


def save_line_plot(out_png: Path, title: str, xlabel: str, ylabel: str, series: list[tuple], *,
                   xlog: bool = False, xlim: tuple[float, float] | None = None) -> None:
    """One PNG line plot; ``series`` holds (x, y, label, matplotlib keyword arguments) tuples."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.2), dpi=110)
    for x, y, label, style in series:
        ax.plot(x, y, label=label, **style)
    if xlog:
        ax.set_xscale("log")
    if xlim:
        ax.set_xlim(*xlim)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png)
    plt.close(fig)
