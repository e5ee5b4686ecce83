"""Frames per second of ``periface.video.watch`` on face_recognition's hamilton clip, vs face_recognition's way.

    OMP_NUM_THREADS=1 taskset -c 0,1 python benchmarks/watch_fps.py      # writes results/watch_fps.json
    OMP_NUM_THREADS=1 taskset -c 0,1 python benchmarks/watch_fps.py --enlarge-to 1080 --max-frames 60 \
        --out results/watch_fps_1080p.json                               # the clip enlarged to 1920 x 1080

periface: decode, detect (CrowdFinder.fast() and CrowdFinder.default()), mask state of every face, track, and one
embedding per track on its best frame. face_recognition's approach, as its video examples do: HOG detection
(upsample 1) and a 128-d encoding of every face in every frame. Same clip, same process, same cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from periface.detect.crowd import CrowdFinder, available_cores  # noqa: E402
from periface.video import frames, watch  # noqa: E402

CLIP = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "short_hamilton_clip.mp4"


def run_periface(clip: Path, finder: CrowdFinder, max_frames: int | None) -> dict:
    from periface.embed import create_embedder
    from periface.image import load_image  # noqa: F401  (keeps the import cost out of the timing)

    embedder = create_embedder("sface")
    n_frames = n_faces = 0
    best: dict[int, tuple] = {}

    def on_frame(frame, faces, ids):
        nonlocal n_frames, n_faces
        n_frames += 1
        n_faces += len(faces)

    t0 = time.perf_counter()
    records = list(watch(clip, finder=finder, max_frames=max_frames, on_frame=on_frame))
    # Recognition once per track, on its best frame (what watch does with a gallery, without the gallery's I/O).
    for r in records:
        best[r["track"]] = (r["best_frame"]["frame"], np.array(r["best_frame"]["box"], np.float32))
    wanted = {f: [] for f, _ in best.values()}
    for tid, (f, box) in best.items():
        wanted[f].append(box)
    for frame in frames(clip, max_frames=max_frames):
        if frame.index in wanted:
            boxes = np.stack(wanted[frame.index])
            from periface.align import template_landmarks_for_box

            embedder.embed(frame.rgb, boxes, np.stack([template_landmarks_for_box(b) for b in boxes]))
    seconds = time.perf_counter() - t0
    return {"frames": n_frames, "faces": n_faces, "tracks": len(records), "seconds": round(seconds, 2),
            "fps": round(n_frames / seconds, 2),
            "tracks_detail": [{k: r[k] for k in ("track", "frames", "mask", "mask_votes")} for r in records]}


def run_face_recognition(clip: Path, max_frames: int | None) -> dict:
    from periface.evaluation.reference import FaceRecognitionReference

    ref = FaceRecognitionReference(upsample=1)
    n_frames = n_faces = 0
    t0 = time.perf_counter()
    for frame in frames(clip, max_frames=max_frames):
        boxes = ref.boxes(frame.rgb)
        ref.embed_boxes(frame.rgb, boxes)
        n_frames += 1
        n_faces += len(boxes)
    seconds = time.perf_counter() - t0
    return {"frames": n_frames, "faces": n_faces, "seconds": round(seconds, 2), "fps": round(n_frames / seconds, 2)}


def enlarged_clip(clip: Path, height: int, max_frames: int | None) -> Path:
    """A copy of ``clip`` enlarged to ``height`` (cubic), written once to a temporary MJPEG file at quality 95."""
    import tempfile

    import cv2

    from periface.image import scaled

    out = Path(tempfile.gettempdir()) / f"{clip.stem}_{height}p_{max_frames or 'all'}.avi"
    if out.exists():
        return out
    part = out.with_suffix(".part.avi")  # renamed when complete, so an interrupted run leaves no short clip
    writer = None
    for frame in frames(clip, max_frames=max_frames):
        enlarged = scaled(frame.rgb, height / frame.rgb.shape[0])
        if writer is None:
            writer = cv2.VideoWriter(str(part), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, enlarged.shape[1::-1])
            writer.set(cv2.VIDEOWRITER_PROP_QUALITY, 95)
        writer.write(cv2.cvtColor(enlarged, cv2.COLOR_RGB2BGR))
    if writer is not None:
        writer.release()
        part.replace(out)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", type=Path, default=CLIP)
    ap.add_argument("--max-frames", type=int)
    ap.add_argument("--out", type=Path, default=Path("results/watch_fps.json"))
    ap.add_argument("--enlarge-to", type=int, metavar="HEIGHT",
                    help="run on a copy of the clip enlarged to this height (1080: a 1080p stream, searched as a "
                         "shrunk whole and tiles; the clip itself is 360 px high)")
    ap.add_argument("--tile-workers", type=int, default=0, help="CrowdFinder.tile_workers (0: one per core)")
    args = ap.parse_args()
    if args.enlarge_to:
        args.clip = enlarged_clip(args.clip, args.enlarge_to, args.max_frames)
    cores = available_cores()
    report = {"clip": str(args.clip.name), "cores": cores, "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
              "note": "wall-clock on a shared machine: compare the ratio, measured in the same run"}
    report["frame_size"] = next(iter(frames(args.clip, max_frames=1))).rgb.shape[1::-1]
    fast = CrowdFinder.fast(tile_workers=args.tile_workers)
    report["tile_threads"] = fast.tile_threads
    report["periface_fast"] = run_periface(args.clip, fast, args.max_frames)
    print("periface fast:", {k: v for k, v in report["periface_fast"].items() if k != "tracks_detail"}, flush=True)
    report["periface_default"] = run_periface(args.clip, CrowdFinder.default(tile_workers=args.tile_workers),
                                              args.max_frames)
    print("periface default:", {k: v for k, v in report["periface_default"].items() if k != "tracks_detail"}, flush=True)
    report["face_recognition"] = run_face_recognition(args.clip, args.max_frames)
    print("face_recognition:", report["face_recognition"], flush=True)
    for k in ("periface_fast", "periface_default"):
        report[f"{k}_fps_ratio"] = round(report[k]["fps"] / report["face_recognition"]["fps"], 2)
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    print({k: v for k, v in report.items() if k.endswith("ratio")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
