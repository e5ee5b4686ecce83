"""Typer commands for privacy governance, mounted by ``periface.cli``:

- ``audit_app``   -> ``periface audit verify|show``
- ``gallery_app`` -> ``periface gallery rotate-key``
- ``purge``       -> ``periface purge``
- ``redact``      -> ``periface redact IMG... --out DIR``

Thin: parse, call the library, print. ``--json`` prints one JSON document.
"""

from __future__ import annotations

import json
import os
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Callable, List, Optional

import typer
from rich.console import Console
from rich.table import Table

from ..cli_options import JsonOpt
from ..errors import PerifaceError
from .audit import terminal_actor

audit_app = typer.Typer(help="The hash-chained audit log: verify it, show it.", no_args_is_help=True)
gallery_app = typer.Typer(help="Gallery maintenance: key rotation, templates to renew.", no_args_is_help=True)
out = Console()
err = Console(stderr=True, soft_wrap=True)

#: ``periface audit verify`` exits with this when the chain does not verify.
AUDIT_BROKEN_EXIT = 20

GalleryOpt = typer.Option(..., "--gallery", "-g", help="gallery directory")


def _run(fn: Callable[[], Any], as_json: bool = False) -> Any:
    try:
        return fn()
    except PerifaceError as e:
        if as_json:
            sys.stdout.write(json.dumps({"error": {"code": e.code, "message": str(e)}}) + "\n")
        err.print(f"[red]error:[/red] {e}", highlight=False)
        raise typer.Exit(e.exit_code) from None


def _open(gallery: Path, **kw: Any) -> Any:
    from ..errors import GalleryError
    from ..gallery import DB_NAME, Gallery

    if not (gallery / DB_NAME).exists():
        raise GalleryError("no periface gallery here", source=str(gallery))
    return Gallery(gallery, **kw)


def _emit(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=1, default=str, ensure_ascii=False) + "\n")


@audit_app.command("verify")
def audit_verify(gallery: Path = GalleryOpt, as_json: bool = JsonOpt) -> None:
    """Check every record's MAC, the chain and the anchor; exit 20 if anything was edited, deleted or reordered."""
    report = _run(lambda: _open(gallery).audit.verify(), as_json)
    if as_json:
        _emit(report.model_dump())
    elif report.ok:
        out.print(f"[green]ok[/green]: {report.records} records, chain and anchor verify")
    else:
        out.print(f"[red]BROKEN[/red]: {report.records} records, {len(report.problems)} problem(s)")
        for p in report.problems:
            out.print(f"  - {p}", highlight=False)
    if not report.ok:
        raise typer.Exit(AUDIT_BROKEN_EXIT)


@audit_app.command("show")
def audit_show(
    gallery: Path = GalleryOpt,
    action: Optional[str] = typer.Option(None, help="enrol, search, verify, screen, erase, purge, confirm, ..."),
    actor: Optional[str] = typer.Option(None, help="key id (or 'local' for library calls)"),
    subject: Optional[str] = typer.Option(None, help="a pseudonym (p-...)"),
    since: Optional[str] = typer.Option(None, help="ISO date or time, UTC"),
    until: Optional[str] = typer.Option(None, help="ISO date or time, UTC"),
    limit: int = typer.Option(50, help="the most recent N matching records"),
    as_json: bool = JsonOpt,
) -> None:
    """Show audit records, filtered. People appear only as pseudonyms."""
    try:
        records = _run(lambda: _open(gallery).audit.records(
            action=action, actor=actor, subject=subject, since=since, until=until, limit=limit), as_json)
    except ValueError as e:
        err.print(f"[red]error:[/red] bad --since/--until: {e}")
        raise typer.Exit(2) from None
    if as_json:
        _emit([r.model_dump() for r in records])
        return
    table = Table("#", "time (UTC)", "action", "actor", "role", "purpose", "subjects", "scores")
    for r in records:
        table.add_row(str(r.seq), r.time[:19].replace("T", " "), r.action, r.actor, r.role, r.purpose or "",
                      ", ".join(r.subjects), ", ".join(f"{s:.3f}" for s in r.scores))
    out.print(table)


def purge(
    gallery: Path = GalleryOpt,
    retention_days: Optional[int] = typer.Option(None, "--retention-days",
                                                 help="shorter than the default 3 years (1095 days)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="list who would be erased, erase nobody"),
    as_json: bool = JsonOpt,
) -> None:
    """Erase every identity whose consent or retention period has run out (run it daily, e.g. from cron)."""
    from datetime import datetime, timezone

    from ..privacy.retention import RetentionPolicy

    try:
        policy = RetentionPolicy(retention_days) if retention_days else RetentionPolicy()
    except ValueError as e:
        err.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    g = _run(lambda: _open(gallery, retention=policy, actor=terminal_actor()), as_json)
    if dry_run:
        today = datetime.now(timezone.utc).date()
        due = [i.identity for i in g.identities() if i.expires <= today]
    else:
        due = _run(lambda: g.purge_expired(), as_json)
    if as_json:
        _emit({"purged": [] if dry_run else due, "due": due, "dry_run": dry_run, "retention_days": policy.days})
    else:
        verb = "would erase" if dry_run else "erased"
        out.print(f"{verb} {len(due)} expired identit{'y' if len(due) == 1 else 'ies'}"
                  + (": " + ", ".join(due) if due else ""))


def redact(
    images: List[Path] = typer.Argument(..., help="image files or folders of images"),
    out_dir: Path = typer.Option(..., "--out", "-o", help="folder for the redacted copies (same names)"),
    method: str = typer.Option("blur", help="blur | pixelate"),
    margin: float = typer.Option(0.25, help="grow each face box by this share of its size on every side (up to 3x for faces under 48 px)"),
    as_json: bool = JsonOpt,
) -> None:
    """Blur or pixelate every face, masked or not, and write copies with no EXIF/GPS/XMP metadata. A folder stands
    for the images directly inside it."""
    from ..image import IMAGE_SUFFIXES, images_in
    from ..privacy.redact import redact_file

    if method not in ("blur", "pixelate"):
        err.print("[red]error:[/red] --method must be blur or pixelate")
        raise typer.Exit(2)
    files = []
    for path in images:
        found = images_in(path) if path.is_dir() else [path]
        if not found:
            err.print(f"[red]error:[/red] {path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
            raise typer.Exit(3)
        files += found
    if any(p.resolve().parent == out_dir.resolve() for p in files):
        err.print("[red]error:[/red] --out must not be the folder of the inputs: originals would be overwritten")
        raise typer.Exit(2)
    same_name = sorted(name for name, count in Counter(p.name for p in files).items() if count > 1)
    if same_name:
        err.print(f"[red]error:[/red] inputs share a name ({', '.join(same_name[:5])}): their copies in --out would "
                  "overwrite each other; redact them into separate folders")
        raise typer.Exit(2)
    docs, failed = [], 0
    for path in files:
        try:
            result = redact_file(path, out_dir, method=method, margin=margin)  # type: ignore[arg-type]
            docs.append({"file": str(path), "out": str(result.path), "faces": result.faces})
            if not as_json:
                out.print(f"{path} -> {result.path}: {result.faces} face(s) {method}")
        except PerifaceError as e:
            failed += 1
            docs.append({"file": str(path), "error": {"code": e.code, "message": e.reason}})
            err.print(f"[red]error:[/red] {e}", highlight=False)
    if as_json:
        _emit(docs)
    if failed:
        raise typer.Exit(3)


@gallery_app.command("outdated")
def outdated(gallery: Path = GalleryOpt, as_json: bool = JsonOpt) -> None:
    """List the people whose templates an earlier version of the embedder computed: re-enrol them (they still
    match, at a slightly lower accuracy)."""
    import warnings

    from ..gallery import TemplateVersionWarning

    g = _run(lambda: _open(gallery), as_json)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TemplateVersionWarning)  # the list below says it in full
        stale = _run(g.outdated_templates, as_json)
        current = g.engine.embedder.fingerprint
    if as_json:
        _emit({"gallery": str(gallery), "embedder": current, "identities": stale})
        return
    if not stale:
        out.print(f"every template was computed by this engine's embedder ({current})")
        return
    out.print(f"{len(stale)} of {len(g)} identities to re-enrol; the embedder is now {current}", highlight=False)
    table = Table()
    table.add_column("identity")
    table.add_column("older templates", justify="right")
    for name, n in stale.items():
        table.add_row(name, str(n))
    out.print(table)


@gallery_app.command("rotate-key")
def rotate_key(
    gallery: Path = GalleryOpt,
    new_key_file: Optional[Path] = typer.Option(
        None, "--new-key-file", help="write the new key here (outside the gallery); default: where the old one was"),
) -> None:
    """Re-encrypt every template and kept image under a new AES-256 key, then replace the key file.

    The new key is written beside the old one first and moved into place only after the database is
    re-encrypted, so a crash in between leaves a key that opens the gallery.
    """
    from ..privacy.crypto import KEY_ENV, KEY_FILE_ENV, default_key_file, encode_key, generate_key

    g = _run(lambda: _open(gallery, actor=terminal_actor()))
    if new_key_file is not None:
        target = new_key_file.resolve()
    elif os.environ.get(KEY_ENV):
        target = None
    else:
        target = Path(os.environ.get(KEY_FILE_ENV) or default_key_file(gallery)).resolve()
    if target is not None and gallery.resolve() in target.parents:
        err.print("[red]error:[/red] the key file must not be inside the gallery directory")
        raise typer.Exit(2)
    new_key = generate_key()
    staged = None
    if target is not None:
        staged = target.with_name(target.name + ".new")
        fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(encode_key(new_key) + "\n")
    try:
        rows = _run(lambda: g.rotate_key(new_key, actor=terminal_actor()))
    except BaseException:
        if staged is not None:
            staged.unlink(missing_ok=True)
        raise
    if target is not None and staged is not None:
        os.replace(staged, target)
        out.print(f"re-encrypted {rows} rows; new key in {target}")
    else:
        out.print(f"re-encrypted {rows} rows. The key came from ${KEY_ENV}: set it to this new key now "
                  "(shown once):", highlight=False)
        sys.stdout.write(encode_key(new_key) + "\n")
