"""Typer commands for thermal work, mounted by ``periface.cli``:

- ``thermal_app`` -> ``periface thermal export|calibrate``
- ``screen`` -> ``periface screen``

Thin: parse, call the library, print. ``--json`` prints one JSON document (``--watch``: one per frame, JSON Lines).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from ..errors import PerifaceError
from .formats import read_thermal, write_temperature
from .registration import Homography, read_point_pairs
from .screening import Blackbody, Screener, ScreeningResult, ScreeningSettings, annotate, screen_frame

thermal_app = typer.Typer(help="Radiometric thermal images: export temperatures, calibrate dual-spectrum registration.",
                          no_args_is_help=True)
THERMAL_SUFFIXES = {".jpg", ".jpeg", ".fff", ".tif", ".tiff", ".npy", ".csv"}


def _fail(err: PerifaceError) -> typer.Exit:
    where = f"{err.source}: " if err.source else ""
    print(f"error: {where}{err.reason}", file=sys.stderr)
    return typer.Exit(err.exit_code)


def _run(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except PerifaceError as err:
        raise _fail(err) from None


def _emit(doc: dict) -> None:
    sys.stdout.write(json.dumps(doc, ensure_ascii=False) + "\n")
    sys.stdout.flush()


@thermal_app.command("export")
def export(
    file: Path = typer.Argument(..., help="R-JPEG, .fff, radiometric TIFF, .npy or .csv"),
    out: Path = typer.Option(..., "--out", "-o", help="T.npy (float32 °C) or T.csv"),
    emissivity: Optional[float] = typer.Option(None, help="override the file's emissivity (skin: 0.98)"),
    json_out: bool = typer.Option(False, "--json", help="print one JSON document"),
) -> None:
    """Write the decoded temperature map in °C, to check any reader against ground truth."""
    frame = _run(lambda: read_thermal(file, emissivity=emissivity))
    _run(lambda: write_temperature(frame, out))
    t = frame.temperature
    doc = {"source": str(file), "out": str(out), "format": frame.format, "camera": frame.camera_model,
           "shape": list(t.shape), "min_c": round(float(np.nanmin(t)), 3), "max_c": round(float(np.nanmax(t)), 3),
           "mean_c": round(float(np.nanmean(t)), 3), "fov_deg": frame.fov_deg,
           "radiometry": vars(frame.radiometry) if frame.radiometry else None}
    if json_out:
        _emit(doc)
    else:
        Console().print(f"[bold]{file}[/] ({frame.format}, {frame.camera_model or 'unknown camera'}): "
                        f"{t.shape[1]}x{t.shape[0]}, {doc['min_c']}..{doc['max_c']} °C -> {out}")


@thermal_app.command("calibrate")
def calibrate(
    pairs: Path = typer.Argument(..., help="CSV rows xv,yv,xt,yt (visible pixel, thermal pixel), or a JSON list"),
    out: Path = typer.Option(Path("registration.json"), "--out", "-o", help="homography JSON to write"),
    json_out: bool = typer.Option(False, "--json"),
) -> None:
    """Fit the visible->thermal homography of a dual-spectrum camera from >= 4 point pairs."""
    vis, th = _run(lambda: read_point_pairs(pairs))
    try:
        h = Homography.fit(vis, th)
    except PerifaceError as err:
        err.source = err.source or str(pairs)
        raise _fail(err) from None
    h.save(out)
    doc = {"out": str(out), "pairs": h.pairs, "rmse_px": round(h.rmse_px, 3), "matrix": h.matrix.tolist()}
    if json_out:
        _emit(doc)
    else:
        Console().print(f"homography from {h.pairs} pairs, reprojection RMSE {h.rmse_px:.2f} px -> {out}")


def _print_result(result: ScreeningResult, console: Console) -> None:
    table = Table(title=str(result.source))
    for col in ("#", "box", "canthus °C", "core °C", "flag", "quality", "dist m", "notes"):
        table.add_column(col)
    for i, f in enumerate(result.faces):
        table.add_row(str(i), ",".join(f"{v:.0f}" for v in f.box), _fmt(f.canthus_c), _fmt(f.core_c),
                      "[bold red]CHECK[/]" if f.flag else ("-" if f.measurable else "n/a"), f"{f.quality:.2f}",
                      _fmt(f.distance_m), "; ".join(f.reasons + f.notes))
    console.print(table)
    if result.blackbody_offset_c is not None:
        console.print(f"blackbody correction {result.blackbody_offset_c:+.2f} °C")
    console.print(f"[dim]{result.notice}[/]")


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.2f}"


def screen(
    thermal: Optional[Path] = typer.Argument(None, help="thermal frame (R-JPEG, .fff, TIFF, .npy, .csv)"),
    visible: Optional[Path] = typer.Option(None, "--visible", help="paired visible frame (dual-spectrum mode)"),
    registration: Optional[Path] = typer.Option(None, "--registration", help="homography JSON from calibrate"),
    blackbody: Optional[str] = typer.Option(None, "--blackbody", help="x,y,w,h,T: reference region and its °C"),
    threshold: float = typer.Option(37.5, help="absolute flag threshold on estimated core °C"),
    relative_offset: float = typer.Option(1.0, help="relative rule: °C above the running median"),
    window: int = typer.Option(50, help="running median over the last N people"),
    ambient: Optional[float] = typer.Option(None, help="room temperature °C (default: from the file, else 24)"),
    annotate_out: Optional[Path] = typer.Option(None, "--annotate", help="write a coloured overlay PNG"),
    watch: Optional[Path] = typer.Option(None, "--watch", help="process the frames arriving in this directory"),
    once: bool = typer.Option(False, "--once", help="with --watch: process the frames present, then stop"),
    interval: float = typer.Option(1.0, help="with --watch: seconds between directory polls"),
    json_out: bool = typer.Option(False, "--json", help="one JSON document (per frame with --watch)"),
) -> None:
    """Screen people in a thermal frame: per face canthus °C, estimated core °C, flag, quality.

    A flag means "check with a clinical thermometer"; it is not a diagnosis.
    """
    settings = ScreeningSettings(threshold=threshold, relative_offset=relative_offset, window=window,
                                 ambient=ambient)
    screener = _run(lambda: Screener(settings))
    bb = _run(lambda: Blackbody.parse(blackbody)) if blackbody else None
    console = Console(file=sys.stdout)
    if watch is not None:
        if visible is not None:
            raise _fail(PerifaceError("--watch works on thermal frames only; drop --visible"))
        if not watch.is_dir():
            raise _fail(PerifaceError("not a directory", source=str(watch)))
        _watch(watch, screener, bb, once, interval, json_out, console)
        return
    if thermal is None:
        raise _fail(PerifaceError("give a THERMAL frame, or --watch DIR"))
    frame = _run(lambda: read_thermal(thermal))
    vis = homography = None
    if visible is not None:
        from ..image import load_image

        vis = _run(lambda: load_image(visible))
        if registration is None:
            raise _fail(PerifaceError("--visible needs --registration H.json (run periface thermal calibrate)"))
        homography = _run(lambda: Homography.load(registration))
    result = _run(lambda: screen_frame(frame, visible=vis, registration=homography, blackbody=bb,
                                       screener=screener))
    if annotate_out is not None:
        _save_png(annotate(frame, result), annotate_out)
    if json_out:
        _emit(result.to_dict())
    else:
        _print_result(result, console)


def _watch(folder: Path, screener: Screener, bb: Blackbody | None, once: bool, interval: float, json_out: bool,
           console: Console) -> None:
    seen: set[Path] = set()
    try:
        while True:
            now = time.time()
            # A file still being written (modified in the last interval) is left for the next poll.
            new = sorted(p for p in folder.iterdir() if p.suffix.lower() in THERMAL_SUFFIXES and p not in seen
                         and (once or now - p.stat().st_mtime >= interval))
            for path in new:
                seen.add(path)
                try:
                    result = screen_frame(read_thermal(path), blackbody=bb, screener=screener)
                except PerifaceError as err:
                    # One bad frame must not stop a screening line; report it and go on.
                    print(f"error: {err.source or path}: {err.reason}", file=sys.stderr)
                    continue
                if json_out:
                    _emit(result.to_dict())
                else:
                    _print_result(result, console)
            if once:
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        return


def _save_png(rgb: np.ndarray, out: Path) -> None:
    from PIL import Image

    Image.fromarray(rgb).save(out)
