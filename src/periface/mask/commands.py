"""``periface mask-synth``: draw synthetic masks onto face photos (registered in ``periface.cli``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import NoFaceError, PerifaceError


def mask_synth(
    inputs: Annotated[list[Path], typer.Argument(help="face images to mask")],
    out: Annotated[Path, typer.Option("--out", help="folder for <stem>_mask.png files")],
    style: Annotated[str, typer.Option(help="random | surgical | n95 | kn95 | cloth")] = "random",
    seed: Annotated[int, typer.Option(help="base seed; file i uses seed + i")] = 0,
    coverage: Annotated[str | None, typer.Option(help="full | nose_exposed | chin (default: random)")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON document instead of a summary")] = False,
) -> None:
    """Mask the largest face in each image and write ``<out>/<stem>_mask.png``.

    Example: ``periface mask-synth a.jpg b.jpg --out masked/ --style surgical --seed 3``.
    A file that cannot be read or has no face is reported with the reason; the others are still written, and the
    exit code is that file's error code (non-zero) when any failed.
    """
    import cv2
    import numpy as np

    from ..image import load_image
    from ..landmarks.facemesh import FaceMeshLandmarker
    from .render import COVERAGES, add_mask, style_from_name

    try:
        style_from_name(style, np.random.default_rng(0))
        if coverage is not None and coverage not in COVERAGES:
            raise ValueError(f"unknown coverage {coverage!r}; use one of {COVERAGES}")
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    out.mkdir(parents=True, exist_ok=True)
    landmarker = FaceMeshLandmarker()
    results: list[dict[str, Any]] = []
    exit_code = 0
    for i, path in enumerate(inputs):
        entry: dict[str, Any] = {"file": str(path)}
        try:
            rgb = load_image(path)
            res = add_mask(rgb, seed=seed + i, style=style, landmarker=landmarker, coverage=coverage)
            if res is None:
                raise NoFaceError("Face Mesh found no face", source=str(path))
            target = out / f"{path.stem}_mask.png"
            if not cv2.imwrite(str(target), cv2.cvtColor(res.image, cv2.COLOR_RGB2BGR)):
                raise PerifaceError("could not write the output image", source=str(target))
            entry.update(ok=True, output=str(target), seed=seed + i, style=res.style.describe())
        except PerifaceError as exc:
            entry.update(ok=False, error=exc.code, reason=exc.reason)
            exit_code = exit_code or exc.exit_code
        results.append(entry)
    failed = [r for r in results if not r["ok"]]
    if json_out:
        typer.echo(json.dumps({"written": len(results) - len(failed), "failed": len(failed), "files": results},
                              indent=2))
    else:
        for r in results:
            if r["ok"]:
                s = r["style"]
                typer.echo(f"{r['file']} -> {r['output']}  ({s['kind']} {s['colour']} {s['pattern']}, {s['coverage']})")
            else:
                typer.echo(f"{r['file']}: {r['error']}: {r['reason']}", err=True)
        typer.echo(f"{len(results) - len(failed)} written, {len(failed)} failed")
    if exit_code:
        raise typer.Exit(exit_code)
