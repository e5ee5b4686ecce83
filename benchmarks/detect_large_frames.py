"""The crowd finder on frames far larger than the 400-px photos it was fitted on, against face_recognition.

    python benchmarks/detect_large_frames.py                 # held-out split; results/detect_large_frames.json
    python benchmarks/detect_large_frames.py --split train   # the split the working size was chosen on

A phone or a 1080p camera gives frames of 2-12 megapixels; the mask-scenes photos are about 400 x 300. Three kinds
of large frame are built from the real scenes, so that every face keeps its annotation:
- ``mosaic:K``: K x K scenes side by side at their own pixels (many small faces in one large frame);
  ``mosaic:K@Z`` enlarges each scene Z times first (faces of up to a few hundred px, still sharp in the shrunk
  views of the pyramid, as in a phone photo of a crowd);
- ``enlarged:F``: a scene enlarged F times (the same crowd, closer: large faces);
- ``longer:N``: a scene enlarged until its longer side is N px (``longer:4032``: a 12-megapixel phone photo).
An enlarged scene is blurred at its own pixels, which a real photo is not, so these frames favour the coarse views.
Detections are mapped back onto each scene and scored there as ``benchmarks/detect_scenes.py`` scores a photo
(IoU 0.5, size bands of the scene's own pixels, so every row judges the same faces), for
``CrowdFinder.default()`` (large frames searched as a pyramid of shrunk views and tiles, ``find_in_large_frame``),
the same with two levels only (the shrunk whole and tiles at the frame's pixels, ``level_ratio=inf``: the same as
the default on frames up to 2,560 px), the same finder run on the whole frame at its own size (``working_size=None``,
before the twenty-first session), and face_recognition's HOG (upsample 1) on the same frames, in the same run. The
photos as they are come first.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from _common import write_result  # noqa: E402

from periface.detect.crowd import CrowdFinder  # noqa: E402
from periface.evaluation.datasets import require_datasets  # noqa: E402
from periface.evaluation.detect_eval import goal_check, load_scene_image  # noqa: E402
from periface.evaluation.detection import DetectionTally  # noqa: E402
from periface.evaluation.voc import read_scenes, split_of  # noqa: E402

BACKGROUND = 114  # grey where a mosaic's scenes are smaller than their cell


def enlarge(rgb: np.ndarray, factor: float) -> np.ndarray:
    return rgb if factor == 1 else cv2.resize(rgb, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC)


def large_frames(scenes, kind: str, k: int, zoom: float = 1.0):
    """(frame, cells): each cell is (scene, x, y, scale, (h, w)) - where the scene's pixels sit in the frame, how
    much they were enlarged, and the scene's own size (a mosaic's boxes belong to the scene holding their centre)."""
    if kind in ("enlarged", "longer"):
        for s in scenes:
            rgb = load_scene_image(s)
            frame = enlarge(rgb, k if kind == "enlarged" else k / max(rgb.shape[:2]))
            yield frame, [(s, 0, 0, frame.shape[1] / rgb.shape[1], rgb.shape[:2])]
        return
    for start in range(0, len(scenes) - k * k + 1, k * k):
        group = scenes[start:start + k * k]
        originals = [load_scene_image(s) for s in group]
        images = [enlarge(i, zoom) for i in originals]
        ch, cw = max(i.shape[0] for i in images), max(i.shape[1] for i in images)
        frame = np.full((ch * k, cw * k, 3), BACKGROUND, np.uint8)
        cells = []
        for j, (s, im, original) in enumerate(zip(group, images, originals)):
            y, x = (j // k) * ch, (j % k) * cw
            frame[y:y + im.shape[0], x:x + im.shape[1]] = im
            cells.append((s, x, y, im.shape[1] / original.shape[1], original.shape[:2]))
        yield frame, cells


def score(find, scenes, kind: str, k: int, zoom: float = 1.0) -> dict:
    """``find(rgb) -> (boxes, scores)`` over the large frames, tallied per scene in the scene's own pixels."""
    tally, seconds, frames, shape = DetectionTally(), 0.0, 0, None
    for frame, cells in large_frames(scenes, kind, k, zoom):
        t0 = time.perf_counter()
        boxes, scores = find(frame)
        seconds += time.perf_counter() - t0
        frames, shape = frames + 1, frame.shape
        for s, x, y, scale, (h, w) in cells:
            b = (np.asarray(boxes, np.float32).reshape(-1, 4) - np.array([x, y, x, y], np.float32)) / scale
            cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
            mine = (cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)  # a box belongs to the scene holding its centre
            tally.add(s.boxes, s.states, b[mine], np.asarray(scores)[mine], s.difficult)
    summary = tally.summary()
    return {"frames": frames, "frame_size": [int(shape[1]), int(shape[0])],
            "seconds_per_frame": seconds / max(frames, 1),
            "summary": summary, "goal": goal_check(summary, tally.goal_counts())}


def boxes_and_scores(finder: CrowdFinder):
    def find(rgb: np.ndarray):
        faces = finder.find(rgb)
        return faces.boxes, faces.scores

    return find


def main() -> int:
    from periface.evaluation.reference import FaceRecognitionReference

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", choices=("test", "train"), default="test")
    ap.add_argument("--limit", type=int, help="the first N scenes of the split")
    ap.add_argument("--frames", nargs="*", default=["enlarged:1", "mosaic:3", "enlarged:3", "mosaic:4@2.5",
                                                         "longer:4032"],
                    help="KIND:K[@ZOOM] with KIND mosaic, enlarged or longer; ZOOM enlarges a mosaic's scenes first")
    ap.add_argument("--tile-workers", type=int, default=0,
                    help="threads that search a frame's tiles (CrowdFinder.tile_workers; 0: one per core); the faces "
                         "found are the same for any number, only the time moves")
    ap.add_argument("--no-before", action="store_true", help="leave out the two rows of earlier sessions' finders")
    args = ap.parse_args()
    scenes = [s for s in read_scenes(require_datasets() / "mask-scenes") if split_of(s.image.name) == args.split]
    scenes = scenes[:args.limit] if args.limit else scenes
    hog = FaceRecognitionReference(upsample=1)
    finder = CrowdFinder.default(tile_workers=args.tile_workers)
    methods = {
        "periface": boxes_and_scores(finder),
        "periface, two levels (before)": boxes_and_scores(CrowdFinder.default(level_ratio=np.inf,
                                                                              tile_workers=args.tile_workers)),
        "periface, whole frame (before)": boxes_and_scores(CrowdFinder.default(working_size=None)),
        "face_recognition": lambda rgb: (lambda b: (b, np.ones(len(b))))(hog.boxes(rgb)),  # HOG has no score
    }
    if args.no_before:
        methods = {name: find for name, find in methods.items() if not name.endswith("(before)")}
    report: dict = {"split": args.split, "scenes": len(scenes), "working_size": CrowdFinder.working_size,
                    "tile_threads": finder.tile_threads, "frames": {}}
    for spec in args.frames:
        kind, k, zoom = parse_frames(spec)
        report["frames"][spec] = {name: score(find, scenes, kind, k, zoom) for name, find in methods.items()
                                  if not (spec == "enlarged:1" and name.endswith("(before)"))}  # the same run there
        print_rows(spec, report["frames"][spec])
    write_result("detect_large_frames", report)
    return 0


def parse_frames(spec: str) -> tuple[str, int, float]:
    """"mosaic:3@2.5" -> ("mosaic", 3, 2.5): kind, K and how much each scene is enlarged first (1 if not given)."""
    kind, _, rest = spec.partition(":")
    k, _, zoom = rest.partition("@")
    if kind not in ("mosaic", "enlarged", "longer") or not k.isdigit():
        raise SystemExit(f"--frames: {spec!r} is not KIND:K[@ZOOM] with KIND mosaic, enlarged or longer")
    return kind, int(k), float(zoom or 1)


def print_rows(spec: str, rows: dict) -> None:
    for name, r in rows.items():
        s = r["summary"]
        ratio = r["seconds_per_frame"] / rows["face_recognition"]["seconds_per_frame"]
        print(f"{spec:11s} {r['frame_size'][0]}x{r['frame_size'][1]:<5d} {name:31s} masked>=32 "
              f"{s['masked>=32']['found']}/{s['masked>=32']['faces']}  false>=32 {s['>=32']['false_boxes']}/"
              f"{s['>=32']['detections']}  small {s['small']['recall']:.3f}  all {s['all']['recall']:.3f}  "
              f"AP {s['all']['ap']:.3f}  {r['seconds_per_frame']:.2f} s/frame ({ratio:.2f}x face_recognition)",
              flush=True)


if __name__ == "__main__":
    sys.exit(main())
