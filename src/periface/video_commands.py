"""The ``periface watch`` command: thin, it parses, calls ``periface.video.watch`` and writes JSON lines.

Register with ``app.command()(watch)`` in ``cli.py``.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Iterator, Optional

import typer

from .cli_options import MinProbabilityOpt


def watch(
    source: str = typer.Argument(..., help="video file, folder of images, or stream URL (rtsp://, http://)"),
    gallery: Optional[Path] = typer.Option(None, "--gallery", help="gallery folder: search each track once"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="write JSON lines here instead of stdout"),
    annotate: Optional[Path] = typer.Option(None, "--annotate", help="write an annotated video (mp4)"),
    every: int = typer.Option(1, "--every", min=1, help="process one frame in N"),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", min=1, help="stop after this many frames"),
    min_frames: int = typer.Option(2, "--min-frames", min=1, help="drop tracks seen in fewer frames"),
    k: int = typer.Option(5, "-k", min=1, help="gallery candidates per track"),
    fast: bool = typer.Option(False, "--fast", help="one detector pass at native size (faster, misses small faces)"),
    live: Optional[bool] = typer.Option(
        None, "--live/--no-live",
        help="always take the newest frame, skipping those that arrived while the last was processed (default: on "
             "for a stream URL without a frame count, as a camera's; off for files, folders and video files served "
             "over HTTP; a file read live plays at its own frame rate; --every does not apply when on)"),
    min_probability: Optional[float] = MinProbabilityOpt,
) -> None:
    """Track every face in a video or stream; one JSON line per track (first/last seen, best frame, mask, candidates)."""
    from .cli import err, fail
    from .detect.crowd import CrowdFinder
    from .errors import PerifaceError
    from .faces import MASK_STATES
    from .video import watch as watch_source, write_jsonl

    def skipped(file: str, reason: str) -> None:
        err.print(f"[yellow]skipped[/yellow] {file}: {reason}", highlight=False)

    finder = (CrowdFinder.fast if fast else CrowdFinder.default)(threshold=min_probability)
    records = watch_source(source, gallery=gallery, finder=finder, every=every, max_frames=max_frames,
                           min_frames=min_frames, k=k, annotate=annotate, on_unreadable=skipped, live=live)
    states: Counter = Counter()

    def counted(tracks: Iterator[dict]) -> Iterator[dict]:
        for record in tracks:
            states[record["mask"]] += 1
            yield record

    def summary() -> str:
        n = sum(states.values())
        return f"{n} track(s)" + (": " + ", ".join(f"{states[m]} {m}" for m in MASK_STATES if states[m]) if n else "")

    try:
        if out is None:
            write_jsonl(counted(records), sys.stdout)
        else:
            with open(out, "w") as f:
                write_jsonl(counted(records), f)
    except KeyboardInterrupt:  # how a camera's stream is ended: the tracks still open were written first
        typer.echo(f"stopped: {summary()}", err=True)
        raise typer.Exit(130)
    except PerifaceError as e:
        fail(e)
    except OSError as e:
        err.print(f"[red]error:[/red] {e}", highlight=False)
        raise typer.Exit(2) from e
    typer.echo(summary(), err=True)
