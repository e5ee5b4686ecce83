"""How far behind a live camera ``periface watch`` runs, with and without ``--live``, against face_recognition.

    OMP_NUM_THREADS=1 taskset -c 0,1 python benchmarks/stream_latency.py     # results/stream_latency.json

A camera does not wait for the program that reads it. This script plays face_recognition's hamilton clip (enlarged
to 1920 x 1080 unless ``--height`` says otherwise) as a live MJPEG-over-HTTP stream from a local server, at the
clip's own frame rate, and reads it with ``periface.video.watch`` (``CrowdFinder.default()``, mask state, tracking)
- live: each frame processed is the newest one the stream has delivered (``frames(live=True)``; the default for a
  stream URL without a frame count, which this run relies on);
- frame by frame (``--no-live``): every frame in order, as a file is read;
and with face_recognition's way of reading a stream (every frame in order, HOG detection and a 128-d encoding of
every face). For each frame processed: its latency, the time from when the camera captured it (its scheduled send
time) to when processing it ended. A reader slower than the camera that reads every frame falls further behind
with every frame; a live reader stays about one frame's processing behind.
"""

from __future__ import annotations

import argparse
import http.server
import os
import socketserver
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from _common import write_result  # noqa: E402

from periface.detect.crowd import CrowdFinder, available_cores  # noqa: E402
from periface.image import scaled  # noqa: E402
from periface.video import frames, watch  # noqa: E402

CLIP = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "short_hamilton_clip.mp4"


class Camera:
    """Serves JPEG frames as a multipart MJPEG stream, frame i at ``start + i / fps`` whether or not the reader
    keeps up (a send that the reader's full buffer blocks goes out late, as a real camera's would be dropped)."""

    def __init__(self, jpegs: list[bytes], fps: float) -> None:
        self.jpegs, self.fps, self.start = jpegs, fps, None
        camera = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                camera.start = time.perf_counter()
                try:
                    for i, jpeg in enumerate(camera.jpegs):
                        time.sleep(max(0.0, camera.captured(i) - time.perf_counter()))
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                                         % len(jpeg) + jpeg + b"\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args) -> None:
                pass

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/stream.mjpg"

    def captured(self, index: int) -> float:
        return self.start + index / self.fps

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def clip_jpegs(clip: Path, height: int) -> tuple[list[bytes], float]:
    cap = cv2.VideoCapture(str(clip))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    jpegs = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        if height:
            bgr = scaled(bgr, height / bgr.shape[0])
        jpegs.append(cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
    cap.release()
    return jpegs, fps


def summary(camera: Camera, processed: list[tuple[int, float]], seconds: float) -> dict:
    latency = np.array([done - camera.captured(index) for index, done in processed])
    indices = [index for index, _ in processed]
    return {"frames_processed": len(processed), "last_frame": indices[-1] if indices else None,
            "frames_skipped": (indices[-1] + 1 - len(indices)) if indices else 0, "seconds": round(seconds, 2),
            "latency_s": {"median": round(float(np.median(latency)), 3), "max": round(float(latency.max()), 3),
                          "last": round(float(latency[-1]), 3)}}


def run_periface(finder: CrowdFinder, jpegs: list[bytes], fps: float, live: bool | None, max_frames: int) -> dict:
    camera = Camera(jpegs, fps)
    processed: list[tuple[int, float]] = []
    t0 = time.perf_counter()
    records = list(watch(camera.url, finder=finder, live=live, max_frames=max_frames,
                         on_frame=lambda frame, faces, ids: processed.append((frame.index, time.perf_counter()))))
    out = summary(camera, processed, time.perf_counter() - t0) | {"tracks": len(records)}
    camera.close()
    return out


def run_face_recognition(jpegs: list[bytes], fps: float, max_frames: int) -> dict:
    from periface.evaluation.reference import FaceRecognitionReference

    ref = FaceRecognitionReference(upsample=1)
    ref.boxes(np.zeros((64, 64, 3), np.uint8))
    camera = Camera(jpegs, fps)
    processed: list[tuple[int, float]] = []
    t0 = time.perf_counter()
    for frame in frames(camera.url, live=False, max_frames=max_frames):
        ref.embed_boxes(frame.rgb, ref.boxes(frame.rgb))
        processed.append((frame.index, time.perf_counter()))
    out = summary(camera, processed, time.perf_counter() - t0)
    camera.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", type=Path, default=CLIP)
    ap.add_argument("--height", type=int, default=1080, help="frame height the camera sends (0: the clip's own)")
    ap.add_argument("--max-frames", type=int, default=40,
                    help="stop a reader after this many frames processed (the clip has 275, 9 s at its 30 fps)")
    args = ap.parse_args()
    jpegs, fps = clip_jpegs(args.clip, args.height)
    height, width = cv2.imdecode(np.frombuffer(jpegs[0], np.uint8), cv2.IMREAD_COLOR).shape[:2]
    report: dict = {"clip": args.clip.name, "frame_size": [width, height], "camera_fps": round(fps, 2),
                    "camera_frames": len(jpegs), "cores": available_cores(), "rows": {}}
    rows = report["rows"]
    finder = CrowdFinder.default()
    finder.find(np.zeros((height, width, 3), np.uint8))  # models loaded and threads started before the camera starts
    rows["periface, live (newest frame)"] = run_periface(finder, jpegs, fps, None, args.max_frames)  # the URL's default
    rows["periface, frame by frame"] = run_periface(finder, jpegs, fps, False, args.max_frames)
    rows["face_recognition, frame by frame"] = run_face_recognition(jpegs, fps, args.max_frames)
    reference = rows["face_recognition, frame by frame"]["latency_s"]["max"]
    for name, r in rows.items():
        r["max_latency_vs_face_recognition"] = round(r["latency_s"]["max"] / reference, 3)
        lat = r["latency_s"]
        print(f"{name:34s} {r['frames_processed']:3d} frames processed (last {r['last_frame']}, "
              f"{r['frames_skipped']} skipped)  latency median {lat['median']:.2f} s, max {lat['max']:.2f} s "
              f"({r['max_latency_vs_face_recognition']:.2f}x face_recognition's)", flush=True)
    write_result("stream_latency", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
