"""periface: face recognition that keeps working when people wear masks.

>>> from periface import Engine, Gallery, Consent
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import (
    ConsentError,
    GalleryError,
    ImageError,
    NoFaceError,
    PerifaceError,
    ThermalFormatError,
    UnknownIdentityError,
)
from .faces import Faces
from .privacy.consent import Consent

__version__ = "0.1.0"
__all__ = [
    "Engine", "Gallery", "Consent", "Faces", "Candidate", "Verification",
    "PerifaceError", "ImageError", "NoFaceError", "UnknownIdentityError", "GalleryError", "ConsentError",
    "ThermalFormatError",
]

if TYPE_CHECKING:
    from .engine import Engine
    from .gallery import Gallery
    from .match import Candidate, Verification


def __getattr__(name: str) -> Any:
    # The heavy stages (cv2, mediapipe, dlib, faiss) are imported on first use, not at ``import periface``.
    if name == "Engine":
        from .engine import Engine

        return Engine
    if name == "Gallery":
        from .gallery import Gallery

        return Gallery
    if name in ("Candidate", "Verification"):
        from . import match

        return getattr(match, name)
    raise AttributeError(f"module 'periface' has no attribute {name!r}")
