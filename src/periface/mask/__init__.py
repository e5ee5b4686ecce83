"""Mask state classification and the synthetic mask renderer.

Names are imported on first use, so ``import periface.mask`` stays cheap and one submodule's heavy dependencies
never load for the other's users.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "MaskStyle": "render",
    "RenderResult": "render",
    "add_mask": "render",
    "random_style": "render",
    "render_mask": "render",
    "renderer_fingerprint": "render",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'periface.mask' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)


__all__ = sorted(_EXPORTS)
