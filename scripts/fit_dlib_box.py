"""Fit where dlib's HOG detector would put its box around a face, given dlib's five points on that face.

    python scripts/fit_dlib_box.py        # ~3 min on one core; writes data/dlib_box.json

dlib's 5-point shape predictor starts from a box and was trained on the boxes of dlib's own detectors; YuNet's box is
taller (it includes the forehead), and started from it the predictor places the points a little differently, which
costs dlib's ResNet accuracy. ``DlibEmbedder`` therefore predicts the points twice: from YuNet's box, then from the
box dlib's HOG detector would have drawn around those points. This script fits that box on LFW photos of people in
no LFW pair list (``data/robust/train_list.txt``): for each photo where HOG finds the face YuNet finds (IoU > 0.3),
the predictor's points from HOG's box, and HOG's box in units of those points (centre offset from their centroid,
width and height, divided by their RMS distance from the centroid). The median of each of the four numbers is the
model. Chosen on View-1 and measured on View-2 by ``benchmarks/dlib_mirror.py``.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from rich.progress import track

from periface.detect import FaceFinder
from periface.detect.base import iou_matrix
from periface.embed.dlib_resnet import DLIB_BOX_FILE, box_in_point_units, load_dlib_models, predict_shape, shape_points
from periface.evaluation.datasets import training_lfw_photos
from periface.evaluation.pipelines import central
from periface.image import load_image
from periface.models import PACKAGE_DATA, record_sha256


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()
    import dlib

    photos = training_lfw_photos()
    finder, hog = FaceFinder.default(), dlib.get_frontal_face_detector()
    predictor, _ = load_dlib_models()
    rows = []
    for path in track(photos, description="HOG box in units of dlib's five points"):
        rgb = np.ascontiguousarray(load_image(path))
        faces = finder.find(rgb)
        i = central(faces.boxes, rgb.shape[:2])
        rects = hog(rgb, 1)
        if i is None or not rects:
            continue
        boxes = np.array([[r.left(), r.top(), r.right(), r.bottom()] for r in rects], np.float32)
        overlap = iou_matrix(faces.boxes[i:i + 1], boxes)[0]
        if overlap.max() <= 0.3:
            continue
        hog_box = boxes[int(overlap.argmax())]
        points = shape_points(predict_shape(predictor, rgb, hog_box, reseat=False))
        rows.append(box_in_point_units(points, hog_box))
    rows = np.array(rows)
    model = np.median(rows, 0)
    spread = np.percentile(rows, [25, 75], 0)
    out = PACKAGE_DATA / DLIB_BOX_FILE
    out.write_text(json.dumps({
        "what": "dlib HOG's box around a face in units of dlib's five points on it: centre offset (x, y) from the "
                "points' centroid, width, height, each divided by the points' RMS distance from the centroid. "
                "scripts/fit_dlib_box.py",
        "fitted_on": f"{len(rows)} LFW photos of train_list.txt where HOG and YuNet find the same face, of {len(photos)}",
        "box": model.round(5).tolist(), "interquartile": spread.round(5).tolist(),
    }, indent=1) + "\n")
    print(f"{len(rows)} of {len(photos)} photos; box {model.round(4).tolist()}; wrote {out}, "
          f"SHA-256 {record_sha256(out)[:12]}...")
    return 0


if __name__ == "__main__":
    sys.exit(main())
