"""The HTTP service and the operators' web page: ``create_app(gallery_dir)``; ``periface serve`` runs it."""

from __future__ import annotations

from typing import Any

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    # FastAPI is imported when the app is built, not whenever a CLI command touches this package.
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module 'periface.service' has no attribute {name!r}")
