"""Why the dlib backend sits below 99.38% on LFW, and what the box it starts from and mirror averaging buy back.

dlib's own documentation (python_examples/face_recognition.py) states 99.13% on LFW for one descriptor per face and
99.38% for ``compute_face_descriptor(img, shape, 100)``: the mean over 100 jittered resamplings, 100x slower. This
script measures, on the faces periface's dlib backend sees (YuNet's central box -> dlib 5-point shape -> 150 px chip
with padding 0.25), two choices:

- the box the shape predictor starts from: YuNet's own, or re-seated (points predicted from YuNet's box, then again
  from the box dlib's HOG detector would draw around them: ``data/dlib_box.json``, ``scripts/fit_dlib_box.py``);
- one descriptor, or the mean of the chip's and its mirror image's (2x the cost);

each scored by cosine and by dlib's Euclidean distance; the face_recognition approach's View-2 accuracy from
``results/lfw_verify.json`` is the reference ratio. Choose on View-1 (pairsDevTest.txt, best single threshold),
report on View-2 (10-fold).

    python benchmarks/dlib_mirror.py --workers 2   # ~25 min on 2 cores; descriptors cached in .cache/dlib_alignment.npz
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from _common import RESULTS, write_result  # noqa: E402

from periface.embed import l2_normalise  # noqa: E402
from periface.evaluation.datasets import require_datasets  # noqa: E402
from periface.evaluation.lfw import pair_labels, read_pairs  # noqa: E402
from periface.evaluation.metrics import kfold_accuracy, tar_at_far  # noqa: E402

CACHE = Path(".cache") / "dlib_alignment.npz"
PAIR_FILES = ("pairsDevTest.txt", "pairs.txt")
SEATS = ("YuNet box", "re-seated box")


def shard_descriptors(args: tuple[Path, list[str]]) -> np.ndarray:
    """(N, seat, mirror, 128) descriptors of the central face of each image; NaN where no face is found."""
    import dlib

    from periface.detect import FaceFinder
    from periface.embed.dlib_resnet import load_dlib_models, predict_shape
    from periface.evaluation.pipelines import central
    from periface.image import load_image

    images, keys = args
    predictor, net = load_dlib_models()
    finder = FaceFinder.default()
    out = np.full((len(keys), 2, 2, 128), np.nan, np.float32)
    t0 = time.time()
    for j, key in enumerate(keys):
        rgb = np.ascontiguousarray(load_image(images / key))
        faces = finder.find(rgb)
        i = central(faces.boxes, rgb.shape[:2])
        if i is None:
            continue
        for s, reseat in enumerate((False, True)):
            shape = predict_shape(predictor, rgb, faces.boxes[i], reseat)
            chip = dlib.get_face_chip(rgb, shape, size=150, padding=0.25)
            vectors = net.compute_face_descriptor([chip, np.ascontiguousarray(chip[:, ::-1])])
            out[j, s] = np.array([np.array(v) for v in vectors])
        if j % 500 == 0:
            print(f"{j}/{len(keys)} {time.time() - t0:.0f}s", flush=True)
    return out


def descriptors(lfw: Path, workers: int) -> tuple[list[str], np.ndarray]:
    if CACHE.exists():
        z = np.load(CACHE)
        return list(z["keys"]), z["desc"]
    keys = sorted({k for f in PAIR_FILES for p in read_pairs(lfw / f) for k in (p.a, p.b)})
    shards = [keys[w::workers] for w in range(workers)]
    with ProcessPoolExecutor(workers) as pool:
        parts = list(pool.map(shard_descriptors, [(lfw / "images", s) for s in shards]))
    desc = np.empty((len(keys), 2, 2, 128), np.float32)
    for w, part in enumerate(parts):
        desc[w::workers] = part
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    np.savez(CACHE, keys=np.array(keys), desc=desc)
    return keys, desc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    lfw = require_datasets() / "lfw"
    keys, desc = descriptors(lfw, args.workers)
    index = {k: i for i, k in enumerate(keys)}
    unit = l2_normalise
    variants = {}
    for s, seat in enumerate(SEATS):
        plain, mirror = desc[:, s, 0], desc[:, s, 1]
        variants |= {f"{seat}, plain, cosine": (unit(plain), "cos"),
                     f"{seat}, mirror-averaged, cosine": (unit(unit(plain) + unit(mirror)), "cos"),
                     f"{seat}, plain, Euclidean": (plain, "l2"),
                     f"{seat}, mirror-averaged, Euclidean": ((plain + mirror) / 2, "l2")}
    doc: dict = {"dlib_documented": {"one descriptor": 0.9913, "100 jittered resamplings": 0.9938}, "variants": {}}
    reference = RESULTS / "lfw_verify.json"
    fr = (json.loads(reference.read_text())["pipelines"].get("face_recognition", {}).get("accuracy")
          if reference.exists() else None)
    for name, (x, kind) in variants.items():
        row: dict = {}
        for f in PAIR_FILES:
            pairs = read_pairs(lfw / f)
            same, folds = pair_labels(pairs)
            ia, ib = np.array([index[p.a] for p in pairs]), np.array([index[p.b] for p in pairs])
            s = (x[ia] * x[ib]).sum(1) if kind == "cos" else -np.linalg.norm(x[ia] - x[ib], axis=1)
            s = np.nan_to_num(s, nan=-9.0)
            if f == "pairs.txt":
                acc, std = kfold_accuracy(s, same, folds)
                row |= {"view2_accuracy": acc, "view2_accuracy_std": std, "view2_tar_at_far_1e-3": tar_at_far(s, same, 1e-3)[0]}
                if fr:
                    row["accuracy_ratio_vs_face_recognition"] = acc / fr
            else:
                row["view1_devtest_best_accuracy"] = max(float(np.mean((s >= t) == same)) for t in np.unique(s))
        doc["variants"][name] = row
        print(f"{name:40s} View-1 DevTest {row['view1_devtest_best_accuracy']:.4f}   View-2 {row['view2_accuracy']:.4f} "
              f"± {row['view2_accuracy_std']:.4f}   TAR@1e-3 {row['view2_tar_at_far_1e-3']:.4f}")
    doc["face_recognition_view2_accuracy"] = fr
    write_result("dlib_mirror", doc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
