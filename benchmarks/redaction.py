"""Redaction recall on real crowd photos: how many annotated faces end up blurred, and at what cost.

    OMP_NUM_THREADS=1 python benchmarks/redaction.py [--limit N]

On `mask-scenes` (427 street and crowd photos, 2,065 faces boxed, 72% of them under 32 px), a face counts as
redacted when at least 80% of its annotated box lies inside a blurred region (detection box grown by the margin,
0.25 of its size, more for small faces: `redaction_margins`). Rows, all in this run:
- periface: `periface redact`'s detector (`RecallDetector`) and margins, as shipped;
- periface before the eighth session: the same detectors without the crowd detector's candidates, one margin for
  every face (the configuration PRIVACY.md reported until then);
- face_recognition: dlib's HOG detector, upsample 1 (`face_recognition.face_locations`), margin 0.25.
Reported on the held-out test split (`split_of(name) == "test"`: the crowd detector and the small-face margins were
chosen on the other 75%), on its photos that are not copies of training photos (two are: docs/crowds.md), and on
all images; also recall by label and size, boxes overlapping no annotated face,
and the share of each image blurred. Writes ``results/redaction.json``; ratios are periface / face_recognition.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from _common import write_result  # noqa: E402

from periface.evaluation.datasets import require_datasets  # noqa: E402
from periface.evaluation.detect_eval import FittingImages  # noqa: E402
from periface.evaluation.reference import FaceRecognitionReference  # noqa: E402
from periface.evaluation.voc import split_of  # noqa: E402
from periface.image import images_in  # noqa: E402
from periface.privacy.redact import RecallDetector, redaction_recall  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=None, help="only the first N images (a quick look)")
    args = ap.parse_args()
    scenes = require_datasets() / "mask-scenes"
    rows = {
        "periface": (RecallDetector(), True),
        "periface before (no crowd candidates, one margin)": (RecallDetector(crowd_probability=None), False),
        "face_recognition (HOG, upsample 1)": (FaceRecognitionReference().boxes, False),
    }
    fitting = FittingImages.load()  # checked once per photo here, not once per detector row
    unseen = {p.name for p in images_in(scenes / "images") if split_of(p.name) == "test" and not fitting.holds_file(p)}
    subsets = {"test split": lambda name: split_of(name) == "test",
               "test split, unseen photos": lambda name: name in unseen,
               "all images": None}
    doc: dict = {"dataset": "mask-scenes", "min_coverage": 0.8, "margin": 0.25, "results": {}}
    for subset, select in subsets.items():
        for row, (detector, grow) in rows.items():
            t0 = time.time()
            r = redaction_recall(scenes, detector, limit=args.limit, select=select, grow_small_faces=grow)
            r["seconds"] = round(time.time() - t0, 1)
            doc["results"].setdefault(subset, {})[row] = r
        reference = doc["results"][subset]["face_recognition (HOG, upsample 1)"]["recall"]
        doc["results"][subset]["recall_ratio_vs_face_recognition"] = (
            doc["results"][subset]["periface"]["recall"] / reference if reference else None)
    path = write_result("redaction", doc)

    console = Console(width=160)
    for subset in subsets:
        res = doc["results"][subset]
        table = Table("detector", "images", "faces", "redacted", "< 32 px", ">= 32 px", "with mask", "without mask",
                      "boxes on no face", "image blurred", "s", title=f"redaction on mask-scenes, {subset}")
        for row in rows:
            r = res[row]
            label = r["by_label"]
            table.add_row(row, str(r["images"]), str(r["faces"]), f"{100 * r['recall']:.1f}%",
                          *(f"{100 * r['by_size'][k]['recall']:.1f}%" if r["by_size"][k]["recall"] is not None else "-"
                            for k in ("< 32 px", ">= 32 px")),
                          *(f"{100 * label[k]['recall']:.1f}%" if k in label else "-" for k in ("correct", "none")),
                          f"{r['detections_off_any_face']} of {r['detections']}",
                          f"{100 * r['blurred_share_of_image']:.1f}%", f"{r['seconds']:.0f}")
        console.print(table)
        ratio = res["recall_ratio_vs_face_recognition"]
        console.print(f"{subset}: periface / face_recognition recall = {ratio:.2f}" if ratio else f"{subset}: no reference")
    console.print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
