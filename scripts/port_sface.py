"""Port SFace (OpenCV Zoo int8 ONNX) to PyTorch and check parity with the original on 200 LFW faces.

    python scripts/port_sface.py                      # parity report; --save writes .cache/robust/sface_torch.pt

The faces: the first 200 images (sorted paths) of LFW View-2 where the project's detector finds a face, aligned
as at run time. Reference: ``SFaceEmbedder`` (cv2.FaceRecognizerSF on the int8 graph). Pass: every cosine >= 0.999.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def main() -> int:
    import torch

    from periface.align import align_faces
    from periface.detect import FaceFinder
    from periface.embed.sface import SFaceEmbedder
    from periface.embed.torch_sface import load_sface_torch
    from periface.evaluation.datasets import require_datasets
    from periface.evaluation.lfw import pair_images, read_pairs
    from periface.evaluation.pipelines import central
    from periface.image import load_image

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", type=int, default=200)
    ap.add_argument("--save", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    lfw = require_datasets() / "lfw"
    finder = FaceFinder.default()
    crops = []
    for rel in pair_images(read_pairs(lfw / "pairs.txt")):
        rgb = load_image(lfw / "images" / rel)
        faces = finder.find(rgb)
        i = central(faces.boxes, rgb.shape[:2])
        if i is not None:
            crops.append(align_faces(rgb, faces.landmarks[i : i + 1], 112)[0])
        if len(crops) == args.faces:
            break
    crops = np.stack(crops)
    reference = SFaceEmbedder().embed_aligned(crops)
    net = load_sface_torch().eval()
    with torch.no_grad():
        out = net(torch.from_numpy(crops).permute(0, 3, 1, 2).float()).numpy()
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    cos = (out * reference).sum(1)
    report = {"faces": len(crops), "min_cosine": float(cos.min()), "mean_cosine": float(cos.mean()),
              "pass": bool(cos.min() >= 0.999)}
    print(json.dumps(report))
    if args.save:
        path = ROOT / ".cache" / "robust" / "sface_torch.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(net.state_dict(), path)
        print(f"wrote {path}")
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
