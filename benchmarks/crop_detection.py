"""Is a face found in a real (masked) face crop, passed as an ordinary photo or with crop=True?

Users and other tools often hand periface tight crops without saying so: the face fills the frame and the
detectors, trained on faces with context around them, can miss it, and then verify and search answer "no face".
In crop mode (``analyze(img, crop=True)``) the crop is looked at inside a grey border first and, when no detector
fires, aligned on the whole crop: usable, but coarser than a detected face. This counts, over the real crops of
``mask-crops/`` (with_mask and without_mask: web/RMFD photos; MaskedFace-Net's correct and incorrect renders), the
share in which a detector finds the face, in both modes, with the second look (the default since the ninth
session: the other way, with or without the border, when the first finds nothing) and without it, and the
face_recognition approach's HOG detector (upsample 1) on the same images in the same run.

    OMP_NUM_THREADS=1 python benchmarks/crop_detection.py      # ~2.5 min on 2 cores; results/crop_detection.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.progress import track
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from _common import write_result  # noqa: E402

from periface.detect import FaceFinder  # noqa: E402
from periface.evaluation.datasets import require_datasets  # noqa: E402
from periface.evaluation.reference import FaceRecognitionReference  # noqa: E402
from periface.image import load_image  # noqa: E402

SUBSETS = ("with_mask", "without_mask", "synthetic_correct", "synthetic_incorrect")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=None, help="at most this many crops per subset (first by name)")
    args = ap.parse_args()
    root = require_datasets() / "mask-crops"
    default = FaceFinder.default()
    one_look = FaceFinder(default.detectors, default.min_face_px, second_look=False)
    hog = FaceRecognitionReference(upsample=1)
    columns = ("photo", "photo_one_look", "crop", "crop_one_look", "face_recognition")
    doc: dict = {"protocol": "share of crops in which a detector finds a face; photo: find(), crop: find_in_crop() "
                             "(its whole-crop fallback not counted); one_look: without the second look",
                 "subsets": {}}
    for sub in SUBSETS:
        files = sorted((root / sub).iterdir())[: args.limit]
        found = np.zeros((len(files), len(columns)), bool)
        for i, f in enumerate(track(files, description=sub)):
            rgb = load_image(f)
            # Each mode's second look is the other mode's first (photo: the crop in a grey border; crop: the image
            # as it is), and it runs only when the first finds nothing: the two one-look answers give all four.
            photo1 = len(one_look.find(rgb)) > 0
            crop1 = one_look.find_in_crop(rgb).detector != ["crop"]
            found[i] = (photo1 or crop1, photo1, crop1 or photo1, crop1, len(hog.boxes(rgb)) > 0)
        rate = found.mean(0)
        doc["subsets"][sub] = {"crops": len(files)} | {c: float(r) for c, r in zip(columns, rate)} | {
            "photo_ratio_vs_face_recognition": float(rate[0] / rate[-1]) if rate[-1] else None}
    table = Table(title="Real face crops: share in which a detector finds the face")
    for col in ("subset", "crops", "as a photo", "one look", "crop=True", "one look", "face_recognition (HOG)",
                "ratio (photo)"):
        table.add_column(col)
    for sub, r in doc["subsets"].items():
        ratio = r["photo_ratio_vs_face_recognition"]
        table.add_row(sub, str(r["crops"]), *(f"{r[c]:.1%}" for c in columns), f"{ratio:.2f}x" if ratio else "-")
    Console(width=140).print(table)
    write_result("crop_detection", doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
