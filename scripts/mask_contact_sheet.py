"""Render 24 synthetic masks on 24 different LFW people and save a 6x4 contact sheet for people to judge.

    python scripts/mask_contact_sheet.py [--seed 7] [--lfw ../shared/datasets/lfw/images] [--out docs/img/mask_contact_sheet.jpg]

The people are drawn at random (seeded), one image each. Styles are drawn with ``random_style`` under a fixed plan
that guarantees every kind, every coverage and several colours appear: kinds cycle surgical, cloth, n95, kn95,
surgical, cloth; coverages cycle full, nose_exposed, chin.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from periface.image import load_image  # noqa: E402
from periface.landmarks import FaceMeshLandmarker  # noqa: E402
from periface.mask.render import random_style, render_mask  # noqa: E402

KIND_PLAN = ("surgical", "cloth", "n95", "kn95", "surgical", "cloth")
COVERAGE_PLAN = ("full", "nose_exposed", "chin", "full")
TILE = 250
COLS, ROWS = 6, 4


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lfw", type=Path, default=ROOT.parent / "shared" / "datasets" / "lfw" / "images")
    ap.add_argument("--out", type=Path, default=ROOT / "docs" / "img" / "mask_contact_sheet.jpg")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    people = sorted(p for p in args.lfw.iterdir() if p.is_dir())
    order = rng.permutation(len(people))
    landmarker = FaceMeshLandmarker()
    tiles, times = [], []
    for pick in order:
        if len(tiles) == COLS * ROWS:
            break
        files = sorted(people[pick].glob("*.jpg"))
        img = load_image(files[int(rng.integers(len(files)))])
        i = len(tiles)
        style_rng = np.random.default_rng([args.seed, i])
        style = random_style(style_rng, coverage=COVERAGE_PLAN[(i // COLS) % len(COVERAGE_PLAN)],
                             kind=KIND_PLAN[i % len(KIND_PLAN)])
        t0 = time.perf_counter()
        mesh = landmarker.landmarks(img)
        if mesh is None:
            continue
        res = render_mask(img, mesh, style, style_rng)
        times.append(time.perf_counter() - t0)
        tile = cv2.resize(res.image, (TILE, TILE), interpolation=cv2.INTER_AREA)
        caption = f"{style.kind} {style.colour_name} / {style.coverage}"
        cv2.rectangle(tile, (0, TILE - 18), (TILE, TILE), (0, 0, 0), -1)
        cv2.putText(tile, caption, (4, TILE - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    rows = [np.concatenate(tiles[r * COLS:(r + 1) * COLS], axis=1) for r in range(ROWS)]
    sheet = np.concatenate(rows, axis=0)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KiB); "
          f"Face Mesh + render: median {1000 * float(np.median(times)):.1f} ms per image")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
