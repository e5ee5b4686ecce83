"""The ``periface`` command: thin Typer commands that parse, call the library, and print (text or ``--json``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer
from rich.console import Console
from rich.table import Table

from .cli_options import JsonOpt, MinProbabilityOpt
from .errors import PerifaceError
from .privacy.audit import ERASURE_PURPOSE, stated_purpose, terminal_actor

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Masked-face recognition, fever screening, privacy built in.")
out = Console()
err = Console(stderr=True, soft_wrap=True)

EmbedderOpt = typer.Option(None, "--embedder", help="sface-robust (default) | sface | dlib | fusion")


def emit(as_json: bool, doc: Any, render: Callable[[], None]) -> None:
    if as_json:
        sys.stdout.write(json.dumps(doc, indent=1, default=str) + "\n")
    else:
        render()


def fail(error: PerifaceError, as_json: bool = False) -> None:
    if as_json:
        sys.stdout.write(json.dumps({"error": {"code": error.code, "message": str(error), "source": error.source}}) + "\n")
    err.print(f"[red]error:[/red] {error}", highlight=False)
    raise typer.Exit(error.exit_code)


def _engine(embedder: str | None):
    from .engine import Engine

    return Engine(embedder)


@app.command()
def detect(
    images: List[Path] = typer.Argument(..., help="image files"),
    as_json: bool = JsonOpt,
    annotate: Optional[Path] = typer.Option(None, "--annotate", help="draw the faces into this image (one input only)"),
    crowd: bool = typer.Option(False, "--crowd", help="fused, tiled detectors for scenes with many small, masked faces"),
    coco: Optional[Path] = typer.Option(None, "--coco", help="also write COCO-format detections to this JSON file"),
    min_probability: Optional[float] = MinProbabilityOpt,
) -> None:
    """Find every face, with its landmarks, mask state and whether nose and mouth show."""
    if min_probability is not None and not crowd:
        raise typer.BadParameter("applies to the crowd finder's calibrated scores: add --crowd",
                                 param_hint="--min-probability")
    engine = _engine(None)
    finder = engine.finder
    if crowd:
        from .detect.crowd import CrowdFinder

        finder = CrowdFinder.default(threshold=min_probability)
    docs, found, failed = [], [], 0
    for path in images:
        try:
            rgb = engine.load(path)
            faces = engine.describe(rgb, finder.find(rgb), embed=False)
            docs.append({"file": str(path), "faces": faces.to_records()})
            found.append((str(path), faces))
            if annotate is not None:
                from .visual import draw_faces

                draw_faces(rgb, faces, annotate)
        except PerifaceError as e:
            failed += 1
            docs.append({"file": str(path), "error": {"code": e.code, "message": e.reason}})
            if not as_json:
                err.print(f"[red]error:[/red] {e}", highlight=False)

    def render() -> None:
        for d in docs:
            if "faces" in d:
                out.print(f"[bold]{d['file']}[/bold]: {len(d['faces'])} face(s)")
                for i, f in enumerate(d["faces"]):
                    out.print(f"  #{i} box={f['box']} score={f['score']:.2f} mask={f['mask']} ({f['mask_score']:.2f}) via {f['detector']}")

    emit(as_json, docs if len(docs) > 1 else docs[0], render)
    if coco is not None:
        from .video import coco_detections

        coco.parent.mkdir(parents=True, exist_ok=True)
        coco.write_text(json.dumps(coco_detections(found)))
    if failed:
        raise typer.Exit(3)


@app.command()
def verify(
    a: Path, b: Path,
    far: float = typer.Option(1e-3, "--far", help="false accept rate to set the threshold at (1e-2, 1e-3, 1e-4)"),
    crop: bool = typer.Option(False, "--crop", help="inputs are face crops"),
    embedder: str = EmbedderOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Are A and B the same person? Exit code 0 either way; the answer is in the output."""
    try:
        v = _engine(embedder).verify(a, b, far=far, crop=crop)
    except PerifaceError as e:
        fail(e, as_json)
    doc = {"a": str(a), "b": str(b), "same": v.same, "score": round(v.score, 4), "threshold": round(v.threshold, 4),
           "far": float(f"{v.far:.3g}"), "target_far": v.target_far, "notes": list(v.notes)}
    emit(as_json, doc, lambda: out.print(
        f"{'[green]same person[/green]' if v.same else '[yellow]different people[/yellow]'}: score {v.score:.3f} "
        f"(threshold {v.threshold:.3f} at FAR {v.target_far:g}; an impostor scores this high with FAR {v.far:.2g})"
        + "".join(f"\n  note: {n}" for n in v.notes)))


def _gallery(path: Path, **kw: Any):
    from .gallery import Gallery

    return Gallery(path, **kw)


@app.command()
def enroll(
    images: List[Path] = typer.Argument(..., help="photos of the person"),
    gallery: Path = typer.Option(..., "--gallery", help="gallery directory (created if missing)"),
    identity: str = typer.Option(..., "--id", help="identity name"),
    purpose: str = typer.Option(..., "--purpose", help="what the consent covers, e.g. 'door access'"),
    subject: Optional[str] = typer.Option(None, "--subject", help="who consented (default: the identity)"),
    collected_by: str = typer.Option("unspecified", "--collected-by"),
    expires: Optional[str] = typer.Option(None, "--expires", help="consent expiry YYYY-MM-DD (default 3 years)"),
    reference: Optional[str] = typer.Option(None, "--consent-ref", help="where the signed form is kept"),
    keep_images: bool = typer.Option(False, "--keep-images", help="store thumbnails (new galleries only)"),
    crop: bool = typer.Option(False, "--crop", help="inputs are face crops"),
    embedder: str = EmbedderOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Enrol a consenting person. Any bad image refuses the whole enrolment; the gallery stays as it was."""
    from pydantic import ValidationError

    from .errors import ConsentError
    from .privacy.consent import Consent

    try:
        fields: dict[str, Any] = {"subject": subject or identity, "purpose": purpose, "collected_by": collected_by,
                                  "reference": reference}
        if expires:
            fields["expires"] = expires
        try:
            consent = Consent(**fields)
        except ValidationError as e:
            raise ConsentError(f"invalid consent record: {e.errors()[0]['msg']}", source=identity) from None
        g = _gallery(gallery, embedder=embedder, keep_images=keep_images)
        result = g.enroll(identity, list(images), consent=consent, crop=crop, actor=terminal_actor())
    except PerifaceError as e:
        fail(e, as_json)
    doc = {"identity": result.identity, "templates": result.templates, "gallery": str(gallery),
           "consent_expires": consent.expires.isoformat(), "notes": list(result.notes)}
    emit(as_json, doc, lambda: out.print(
        f"enrolled [bold]{result.identity}[/bold]: {result.templates} template(s) in {gallery}"
        + "".join(f"\n  note: {n}" for n in result.notes)))


@app.command()
def search(
    images: List[Path] = typer.Argument(..., help="a photo of the person sought; several photos of the same person "
                                                  "make one search on the mean of their faces"),
    gallery: Path = typer.Option(..., "--gallery"),
    k: int = typer.Option(10, "-k", "--k", min=1, max=100, help="candidates to return"),
    purpose: Optional[str] = typer.Option(None, "--purpose", help="why this search is made (required, audited)"),
    crop: bool = typer.Option(False, "--crop"),
    as_json: bool = JsonOpt,
) -> None:
    """Rank the gallery's identities for the person in IMAGES: a candidate list for a person to review, not a verdict.

    Every search states why it is made; the audit log records the purpose and who ran it."""
    from .errors import GalleryError
    from .gallery import Gallery

    try:
        purpose = stated_purpose(purpose, "--purpose, which the audit log keeps", source=str(images[0]))
        if not (gallery / "gallery.sqlite").exists():
            raise GalleryError("no periface gallery here", source=str(gallery))
        g = Gallery(gallery)
        probe = images[0] if len(images) == 1 else list(images)
        candidates = g.search(probe, k=k, purpose=purpose, crop=crop, actor=terminal_actor())
    except PerifaceError as e:
        fail(e, as_json)
    doc = {"probe": str(images[0]) if len(images) == 1 else [str(i) for i in images],
           "candidates": [c.to_dict() for c in candidates]}

    def render() -> None:
        table = Table(title=f"candidates for {', '.join(str(i) for i in images)}")
        for col in ("rank", "identity", "score", "FAR"):
            table.add_column(col)
        for c in candidates:
            table.add_row(str(c.rank), c.identity, f"{c.score:.3f}", f"{c.far:.2g}")
        out.print(table)

    emit(as_json, doc, render)


@app.command()
def remove(
    gallery: Path = typer.Option(..., "--gallery"),
    identity: str = typer.Option(..., "--id"),
    purpose: str = typer.Option(ERASURE_PURPOSE, "--purpose", help="why, for the audit log (e.g. 'erasure request "
                                "2026-11-28, ticket 41')"),
    as_json: bool = JsonOpt,
) -> None:
    """Erase a person: templates, masked variants, consent rows, stored images and index entries."""
    from .errors import GalleryError
    from .gallery import Gallery

    try:
        if not (gallery / "gallery.sqlite").exists():
            raise GalleryError("no periface gallery here", source=str(gallery))
        n = Gallery(gallery).remove(identity, actor=terminal_actor(), role="admin",
                                    purpose=stated_purpose(purpose, "--purpose", source=identity))
    except PerifaceError as e:
        fail(e, as_json)
    emit(as_json, {"identity": identity, "erased_templates": n}, lambda: out.print(f"erased {identity}: {n} template(s)"))


@app.command()
def demo(
    out_dir: Path = typer.Option(Path("demo-output"), "--out", help="where the demo writes its gallery and pictures"),
    as_json: bool = JsonOpt,
) -> None:
    """Run the whole pipeline on the bundled sample images."""
    from .demo import run_demo

    try:
        doc = run_demo(out_dir, console=None if as_json else out)
    except PerifaceError as e:
        fail(e, as_json)
    if as_json:
        emit(True, doc, lambda: None)


def _register_subcommands() -> None:
    # Each area keeps its commands beside its code; this file only mounts them. Importing those modules is cheap:
    # the models behind them load on first use.
    from .evaluation.commands import eval_app
    from .mask.commands import mask_synth
    from .privacy.commands import audit_app, gallery_app, purge, redact
    from .service.commands import keys_app, serve
    from .thermal.commands import screen, thermal_app
    from .video_commands import watch

    app.add_typer(eval_app, name="eval")
    app.command("mask-synth")(mask_synth)
    app.add_typer(audit_app, name="audit")
    app.add_typer(gallery_app, name="gallery")
    app.command("purge")(purge)
    app.command("redact")(redact)
    app.add_typer(keys_app, name="keys")
    app.command("serve")(serve)
    app.add_typer(thermal_app, name="thermal")
    app.command("screen")(screen)
    app.command("watch")(watch)


_register_subcommands()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
