"""Typer commands for the service, mounted by ``periface.cli``:

- ``serve``    -> ``periface serve --gallery DIR --host 127.0.0.1 --port 8000``
- ``keys_app`` -> ``periface keys create|revoke|list``
"""

from __future__ import annotations

import ipaddress
import json
import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from ..errors import PerifaceError

keys_app = typer.Typer(help="API keys of a gallery's service: create (shown once), revoke, list.", no_args_is_help=True)
out = Console()
err = Console(stderr=True, soft_wrap=True)

GalleryOpt = typer.Option(..., "--gallery", "-g", help="gallery directory")


def _fail(e: PerifaceError) -> typer.Exit:
    err.print(f"[red]error:[/red] {e}", highlight=False)
    return typer.Exit(e.exit_code)


def _audit(gallery: Path) -> Any:
    from ..errors import GalleryError
    from ..gallery import DB_NAME, Gallery

    if not (gallery / DB_NAME).exists():
        raise GalleryError("no periface gallery here (create it with `periface serve` or `periface enroll`)",
                           source=str(gallery))
    return Gallery(gallery).audit


def _store(gallery: Path) -> Any:
    from .auth import KeyStore
    from .core import KEYS_FILE

    return KeyStore(gallery / KEYS_FILE)


@keys_app.command("create")
def keys_create(
    role: str = typer.Option(..., "--role", help="admin | operator | auditor"),
    gallery: Path = GalleryOpt,
    label: str = typer.Option("", help="who holds the key, e.g. 'front desk tablet'"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Create a key and print it once; only its SHA-256 is stored."""
    from .auth import ROLES

    if role not in ROLES:
        err.print(f"[red]error:[/red] --role must be one of {', '.join(ROLES)}")
        raise typer.Exit(2)
    try:
        audit = _audit(gallery)
        key_id, token = _store(gallery).create(role, label)
        audit.append("key-create", actor="cli", role="admin", purpose="key management", inputs=[], subjects=[],
                     scores=[], details={"key": key_id, "role": role})
    except PerifaceError as e:
        raise _fail(e) from None
    if as_json:
        sys.stdout.write(json.dumps({"id": key_id, "role": role, "label": label, "key": token}) + "\n")
        return
    err.print(f"created {role} key {key_id}; it is shown once, store it now:")
    sys.stdout.write(token + "\n")


@keys_app.command("revoke")
def keys_revoke(key_id: str = typer.Argument(..., help="the key's id (k_...), see `periface keys list`"),
                gallery: Path = GalleryOpt) -> None:
    """Revoke a key at once (a running service refuses it on the next request)."""
    try:
        audit = _audit(gallery)
        info = _store(gallery).revoke(key_id)
        audit.append("key-revoke", actor="cli", role="admin", purpose="key management", inputs=[], subjects=[],
                     scores=[], details={"key": key_id})
    except PerifaceError as e:
        raise _fail(e) from None
    out.print(f"revoked {info.id} ({info.role})")


@keys_app.command("list")
def keys_list(gallery: Path = GalleryOpt, as_json: bool = typer.Option(False, "--json")) -> None:
    """Key ids, roles, labels and dates; never the keys themselves."""
    keys = _store(gallery).list()
    if as_json:
        sys.stdout.write(json.dumps([vars(k) for k in keys]) + "\n")
        return
    table = Table("id", "role", "label", "created", "last used", "revoked")
    for k in keys:
        table.add_row(k.id, k.role, k.label, k.created, k.last_used or "", k.revoked or "")
    out.print(table)


def serve(
    gallery: Path = typer.Option(..., "--gallery", "-g", help="gallery directory (created if absent)"),
    host: str = typer.Option("127.0.0.1", help="interface to listen on; loopback unless behind a TLS proxy"),
    port: int = typer.Option(8000),
    keep_images: bool = typer.Option(False, "--keep-images", help="store reviewer thumbnails (new galleries only)"),
    max_upload_mb: Optional[float] = typer.Option(None, help="largest request body (default 10 MB)"),
    rate: Optional[float] = typer.Option(None, help="requests per second per key (default 20)"),
    retention_days: Optional[int] = typer.Option(None, help="retention shorter than the 3-year default"),
    watch: Optional[Path] = typer.Option(None, "--watch", help="folder of thermal frames for the screening view"),
    log_level: str = typer.Option("info"),
    access_log: bool = typer.Option(False, "--access-log",
                                    help="log every request line; off by default: paths can carry names"),
) -> None:
    """Run the HTTP API (OpenAPI page at /docs) and the operators' web page over one gallery."""
    import uvicorn

    from .app import create_app
    from .limits import ServiceSettings

    overrides: dict[str, Any] = {}
    if max_upload_mb is not None:
        overrides["max_upload_bytes"] = int(max_upload_mb * 1024 * 1024)
    if rate is not None:
        overrides["rate_per_second"] = rate
    if retention_days is not None:
        overrides["retention_days"] = retention_days
    if watch is not None:
        overrides["watch_dir"] = str(watch)
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = host == "localhost"
    if not loopback:
        err.print(f"[yellow]warning:[/yellow] listening on {host}: put a TLS-terminating proxy in front; "
                  "API keys and photos must not cross a network in clear text.")
    try:
        app = create_app(gallery, ServiceSettings(**overrides), keep_images=keep_images)
    except PerifaceError as e:
        raise _fail(e) from None
    if not app.state.service.keys.list():
        err.print(f"no API keys yet: create one with `periface keys create --role admin --gallery {gallery}`")
    # One process: the rate limits and the page's sessions live in memory, and one gallery has one writer.
    # No access log by default: a path such as /api/identities/{name} would write a name outside the gallery,
    # where erasure cannot reach it.
    uvicorn.run(app, host=host, port=port, log_level=log_level, workers=1, access_log=access_log)
