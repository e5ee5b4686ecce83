"""Embedding backbones behind one ``Embedder`` interface. ``create_embedder(name)`` builds one by name."""

from __future__ import annotations

import json

from ..models import PACKAGE_DATA
from .base import Embedder, l2_normalise
from .dlib_resnet import DlibEmbedder
from .fusion import FusionEmbedder
from .robust import RobustSFaceEmbedder
from .sface import SFaceEmbedder

__all__ = ["Embedder", "SFaceEmbedder", "RobustSFaceEmbedder", "DlibEmbedder", "FusionEmbedder", "create_embedder", "l2_normalise", "EMBEDDERS"]

EMBEDDERS = ("sface", "sface-robust", "dlib", "fusion")


def create_embedder(name: str, threads: int = 0, flip: bool = True) -> Embedder:
    """``"sface"``, ``"sface-robust"`` (SFace with its last stages fine-tuned on masked faces), ``"dlib"``, or
    ``"fusion"`` of SFace and dlib with weights learned on LFW View-1. ``threads``: ONNX Runtime threads (0: all);
    ``flip``: sface-robust and dlib (also inside fusion) average each face with its mirror."""
    if name == "sface":
        return SFaceEmbedder()
    if name == "sface-robust":
        return RobustSFaceEmbedder(threads=threads, flip=flip)
    if name == "dlib":
        return DlibEmbedder(flip=flip)
    if name == "fusion":
        params = json.loads((PACKAGE_DATA / "fusion.json").read_text())
        return FusionEmbedder([SFaceEmbedder(), DlibEmbedder(flip=flip)], params["weights"], params["impostor_std"])
    raise ValueError(f"unknown embedder {name!r}; choose one of {EMBEDDERS}")
