"""The HTTP service and the operators' web page: ``create_app(gallery_dir)``; ``periface serve`` runs it."""

from .app import create_app

__all__ = ["create_app"]
