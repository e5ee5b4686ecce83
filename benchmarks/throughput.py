"""End-to-end throughput: faces per second (detect + align + mask state + embed) on group photos and on LFW images,
for periface and the face_recognition approach (dlib HOG + dlib ResNet) on the same images in the same run.

    python benchmarks/throughput.py [--lfw 300] [--repeat 3]

Writes results/throughput.json and prints a table with the ratio periface / face_recognition. Timings are taken
on whatever else the machine is doing: compare the ratio, not the absolute numbers.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).parent))
from _common import write_result  # noqa: E402

from periface import Engine  # noqa: E402
from periface.demo import SAMPLES  # noqa: E402
from periface.evaluation.datasets import datasets_root  # noqa: E402
from periface.evaluation.reference import FaceRecognitionReference  # noqa: E402
from periface.image import load_image  # noqa: E402


def time_run(fn, images: list[np.ndarray], repeat: int) -> tuple[float, int]:
    fn(images[0])  # warm-up: lazy model loading is not throughput
    best = float("inf")
    faces = 0
    for _ in range(repeat):
        t0 = time.perf_counter()
        faces = sum(fn(img) for img in images)
        best = min(best, time.perf_counter() - t0)
    return best, faces


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lfw", type=int, default=300, help="number of LFW images (seeded sample)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    sets: dict[str, list[np.ndarray]] = {
        "group photos": [load_image(SAMPLES / n) for n in ("group_obama_and_biden.jpg", "group_kit_with_rose.jpg")]
        + [load_image(Path(__file__).resolve().parents[1] / "tests/fixtures/two_people.jpg")],
    }
    root = datasets_root()
    if root is not None:
        paths = sorted((root / "lfw/images").glob("*/*.jpg"))
        pick = np.random.default_rng(0).choice(len(paths), size=min(args.lfw, len(paths)), replace=False)
        sets["LFW 250x250"] = [load_image(paths[i]) for i in sorted(pick)]
    robust, sface = Engine("sface-robust"), Engine("sface")
    ref = FaceRecognitionReference()
    pipelines = {
        "periface (sface-robust, default)": lambda img: len(robust.describe(img, robust.finder.find(img))),
        "periface (sface)": lambda img: len(sface.describe(img, sface.finder.find(img))),
        "face_recognition": lambda img: len(ref.embed_boxes(img, ref.boxes(img))),
    }
    doc: dict = {"sets": {}}
    table = Table("images", "pipeline", "faces", "seconds", "faces/s", "ratio vs face_recognition",
                  title="end-to-end throughput (detect + embed, periface also classifies masks)")
    for set_name, images in sets.items():
        rows = {}
        for name, fn in pipelines.items():
            seconds, faces = time_run(fn, images, args.repeat)
            rows[name] = {"images": len(images), "faces": faces, "seconds": seconds,
                          "faces_per_s": faces / seconds, "images_per_s": len(images) / seconds}
        for name, r in rows.items():
            r["ratio_faces_per_s_vs_face_recognition"] = r["faces_per_s"] / max(rows["face_recognition"]["faces_per_s"], 1e-9)
            table.add_row(set_name, name, str(r["faces"]), f"{r['seconds']:.2f}", f"{r['faces_per_s']:.1f}",
                          f"{r['ratio_faces_per_s_vs_face_recognition']:.2f}")
        doc["sets"][set_name] = rows
    Console().print(table)
    print(f"wrote {write_result('throughput', doc)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
