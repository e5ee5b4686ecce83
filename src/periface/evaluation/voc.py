"""Pascal-VOC annotations of boxed faces: the folder layouts and label names in use, and the fixed train/test split.

``read_voc_folder`` reads any of the usual layouts (``annotations/`` + ``images/`` as the Kaggle mask set ships,
``Annotations/`` + ``JPEGImages/`` as Pascal VOC does, or XML files beside their images) and maps each object's
label to a mask state. Labels it does not know are reported, not guessed: a mask-detection set often boxes hats,
loose masks or sunglasses too, and counting those as faces would make every number wrong. A file that cannot be
used is named with the reason and left out; the rest are evaluated.
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import AnnotationError
from ..image import IMAGE_SUFFIXES

# Label names used by public mask-detection sets, normalised (``normalise_label``) -> periface's mask states.
# "face" means a face whose mask state the set does not say: it counts for detection, not for mask state.
KNOWN_LABELS: dict[str, str] = {
    # Kaggle "Face Mask Detection" (andrewmvd; the mask-scenes set)
    "with_mask": "correct", "without_mask": "none", "mask_weared_incorrect": "incorrect",
    # AIZOO / FaceMaskDetection and sets derived from WIDER Face + MAFA
    "face_mask": "correct", "face": "none",
    # "Medical mask" sets (Humans in the Loop) box the face and, separately, masks, hats and glasses
    "face_with_mask": "correct", "face_no_mask": "none", "face_with_mask_incorrect": "incorrect",
    "face_other_covering": "face",
    # other spellings seen in public sets
    "mask": "correct", "masked": "correct", "mask_on": "correct", "facemask": "correct", "with_facemask": "correct",
    "no_mask": "none", "nomask": "none", "no_facemask": "none", "unmasked": "none", "without_facemask": "none",
    "face_without_mask": "none", "mask_worn_incorrectly": "incorrect", "mask_worn_incorrect": "incorrect",
    "incorrect_mask": "incorrect", "mask_incorrect": "incorrect", "improperly_masked": "incorrect",
    "incorrectly_masked": "incorrect",
}
STATES = ("none", "correct", "incorrect", "face", "ignore")  # what a label may map to; "ignore": not a face
LAYOUTS = (("annotations", "images"), ("Annotations", "JPEGImages"), ("annotations", "JPEGImages"),
           ("Annotations", "images"), ("labels", "images"))


@dataclass(frozen=True)
class Scene:
    image: Path
    boxes: np.ndarray  # (N, 4) xyxy, in the image's stored pixel grid
    states: list[str]  # per box: none | correct | incorrect | face (state not given)
    difficult: np.ndarray | None = None  # (N,) bool; VOC's "difficult" faces count neither as found nor as missed
    size: tuple[int, int] | None = None  # (width, height) as the annotation states it


@dataclass
class VocSet:
    scenes: list[Scene]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    labels: Counter = field(default_factory=Counter)  # every label seen, with its count
    unknown_labels: Counter = field(default_factory=Counter)  # labels not mapped, left out of the evaluation


def normalise_label(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.strip().lower()).strip("_")


def parse_label_overrides(pairs: list[str]) -> dict[str, str]:
    """``["hat=ignore", "Person Face=face"]`` -> {normalised label: state}; a bad pair raises ``ValueError``."""
    out = {}
    for pair in pairs:
        label, sep, state = pair.partition("=")
        state = state.strip().lower()
        if not sep or not normalise_label(label) or state not in STATES:
            raise ValueError(f"--label {pair!r}: expected LABEL=STATE with STATE one of {', '.join(STATES)}")
        out[normalise_label(label)] = state
    return out


def read_voc(xml_path: Path, images_dir: Path, labels: Mapping[str, str] | None = None,
             seen: VocSet | None = None) -> Scene:
    """One annotation file. Objects whose label maps to nothing are counted in ``seen.unknown_labels`` and left out.
    Raises ``AnnotationError`` naming the file when it is not VOC XML, has a box without numbers, or its image is
    missing."""
    table = {**KNOWN_LABELS, **(labels or {})}
    try:
        root = ET.parse(xml_path).getroot()
    except (ET.ParseError, OSError) as exc:
        raise AnnotationError(f"not a readable Pascal-VOC XML file ({exc})", source=str(xml_path)) from None
    if root.tag != "annotation":
        raise AnnotationError(f"root element is <{root.tag}>, not <annotation>", source=str(xml_path))
    boxes, states, difficult = [], [], []
    for k, obj in enumerate(root.iter("object")):
        label = obj.findtext("name", "").strip()
        state = table.get(normalise_label(label))
        if seen is not None:
            seen.labels[label] += 1
            if state is None:
                seen.unknown_labels[label] += 1
        if state is None or state == "ignore":
            continue
        bb = obj.find("bndbox")
        try:
            box = [float(bb.findtext(key)) for key in ("xmin", "ymin", "xmax", "ymax")]
        except (AttributeError, TypeError, ValueError):
            raise AnnotationError(f"object {k} ({label!r}) has no numeric <bndbox>", source=str(xml_path)) from None
        if box[2] <= box[0] or box[3] <= box[1]:
            raise AnnotationError(f"object {k} ({label!r}) has an empty box {box}", source=str(xml_path))
        boxes.append(box)
        states.append(state)
        difficult.append(obj.findtext("difficult", "0").strip() in ("1", "true"))
    size = None
    try:
        size = (int(float(root.findtext("size/width"))), int(float(root.findtext("size/height"))))
    except (TypeError, ValueError):
        pass
    return Scene(_image_of(xml_path, root.findtext("filename", ""), images_dir),
                 np.array(boxes, np.float32).reshape(-1, 4), states, np.array(difficult, bool), size)


def _image_of(xml_path: Path, filename: str, images_dir: Path) -> Path:
    """The annotated image: the file the XML names, else the XML's own stem with an image suffix (tools that copy
    annotations between sets often leave a stale <filename>)."""
    named = images_dir / Path(filename.strip()).name if filename.strip() else None
    if named is not None and named.is_file():
        return named
    for suffix in IMAGE_SUFFIXES:
        for candidate in (images_dir / (xml_path.stem + suffix), images_dir / (xml_path.stem + suffix.upper())):
            if candidate.is_file():
                return candidate
    raise AnnotationError(f"its image {filename.strip() or xml_path.stem + '.*'} is not in {images_dir}",
                          source=str(xml_path))


def voc_layout(folder: Path) -> tuple[list[Path], Path]:
    """(annotation files sorted by name, image folder) for the layouts in ``LAYOUTS`` or XML beside images."""
    folder = Path(folder)
    if not folder.is_dir():
        raise AnnotationError("not a folder", source=str(folder))
    for ann, img in LAYOUTS:
        if (folder / ann).is_dir() and (folder / img).is_dir() and any((folder / ann).glob("*.xml")):
            return sorted((folder / ann).glob("*.xml")), folder / img
    xmls = sorted(folder.glob("*.xml"))
    if xmls:
        return xmls, folder
    raise AnnotationError("no Pascal-VOC annotations: expected annotations/*.xml with images/, Annotations/*.xml "
                          "with JPEGImages/, or *.xml beside the images", source=str(folder))


def read_voc_folder(folder: Path, labels: Mapping[str, str] | None = None, limit: int | None = None) -> VocSet:
    """Every usable annotated image of a VOC folder. Files that cannot be used are listed in ``skipped``; raises
    ``AnnotationError`` when none can, or when no label in the set is one periface knows or was told."""
    xmls, images_dir = voc_layout(folder)
    result = VocSet([])
    for xml in xmls[:limit]:
        try:
            result.scenes.append(read_voc(xml, images_dir, labels, result))
        except AnnotationError as exc:
            result.skipped.append((str(xml), exc.reason))
    if not result.scenes:
        reasons = "; ".join(f"{Path(f).name}: {r}" for f, r in result.skipped[:3])
        raise AnnotationError(f"no usable annotation file ({reasons})", source=str(folder))
    if result.labels and result.unknown_labels == result.labels:
        raise AnnotationError(
            f"none of its labels is a known face label ({', '.join(sorted(result.labels))}); say what each means "
            "with --label NAME=STATE (STATE: none, correct, incorrect, face, ignore)", source=str(folder))
    return result


def read_scenes(folder: Path) -> list[Scene]:
    """The mask-scenes set (every file must be usable)."""
    voc = read_voc_folder(folder)
    if voc.skipped:
        raise AnnotationError(f"{len(voc.skipped)} unusable file(s), first: {voc.skipped[0]}", source=str(folder))
    return voc.scenes


def name_hash(name: str) -> float:
    """A number in [0, 1) fixed by the file name: the same on every machine and every run."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little") / 2**32


def split_of(name: str, test_share: float = 0.25) -> str:
    """'train' or 'test', fixed by a hash of the file name (``name_hash`` below ``test_share``: test)."""
    return "test" if name_hash(name) < test_share else "train"
