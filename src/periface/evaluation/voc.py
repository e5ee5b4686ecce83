"""Pascal-VOC annotations (the mask-scenes set): boxes with mask labels, and the fixed train/test split."""

from __future__ import annotations

import hashlib
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# The scene set's labels -> periface's mask states.
VOC_TO_STATE = {"with_mask": "correct", "without_mask": "none", "mask_weared_incorrect": "incorrect"}


@dataclass(frozen=True)
class Scene:
    image: Path
    boxes: np.ndarray  # (N, 4) xyxy
    states: list[str]  # per box: none | correct | incorrect


def read_voc(xml_path: Path, images_dir: Path) -> Scene:
    root = ET.parse(xml_path).getroot()
    boxes, states = [], []
    for obj in root.iter("object"):
        bb = obj.find("bndbox")
        boxes.append([float(bb.find(k).text) for k in ("xmin", "ymin", "xmax", "ymax")])
        states.append(VOC_TO_STATE.get(obj.find("name").text.strip(), "unknown"))
    return Scene(images_dir / root.find("filename").text.strip(), np.array(boxes, np.float32).reshape(-1, 4), states)


def read_scenes(folder: Path) -> list[Scene]:
    folder = Path(folder)
    return [read_voc(x, folder / "images") for x in sorted((folder / "annotations").glob("*.xml"))]


def name_hash(name: str) -> float:
    """A number in [0, 1) fixed by the file name: the same on every machine and every run."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little") / 2**32


def split_of(name: str, test_share: float = 0.25) -> str:
    """'train' or 'test', fixed by a hash of the file name (``name_hash`` below ``test_share``: test)."""
    return "test" if name_hash(name) < test_share else "train"
