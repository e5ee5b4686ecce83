"""Load test of ``periface serve``: N concurrent clients on loopback against /api/verify, then /api/search.

Starts the service in a subprocess on 127.0.0.1 (a free port), enrols a few LFW people through the API, then for
``--seconds`` per endpoint runs ``--clients`` threads that post real LFW photos. Reports requests/s, p50/p99
latency and errors per endpoint, and, in the same run, the same verify workload done by the reference approach
(face_recognition's dlib pipeline: HOG detector + 5-point shape predictor + ResNet descriptor, in-process, no
HTTP), as a throughput ratio. Writes ``results/service_load.json``.

    OMP_NUM_THREADS=1 python benchmarks/service_load.py --seconds 60 --clients 4

Goal (issue 5): >= 20 verify/s with p99 < 500 ms on 2 cores, 0 errors.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LFW = ROOT.parent / "shared" / "datasets" / "lfw" / "images"
FIXTURES = ROOT / "tests" / "fixtures"
PURPOSE = "load benchmark"

SERVER = """
import sys, uvicorn
from periface.service import create_app
from periface.service.limits import ServiceSettings
app = create_app(sys.argv[1], ServiceSettings(rate_per_second=0, purge_interval_s=0, workers=int(sys.argv[3])))
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[2]), log_level="warning", access_log=False)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def people(n: int, lfw: Path = LFW) -> list[list[Path]]:
    """``n`` LFW people with at least 3 photos (sorted, deterministic); fixtures when LFW is absent."""
    if not lfw.exists():
        return [[FIXTURES / "obama.jpg", FIXTURES / "obama2.jpg", FIXTURES / "obama3.jpg"],
                [FIXTURES / "biden.jpg", FIXTURES / "biden.jpg", FIXTURES / "biden.jpg"]]
    out = []
    for d in sorted(lfw.iterdir()):
        files = sorted(d.glob("*.jpg"))
        if len(files) >= 3:
            out.append(files[:3])
        if len(out) == n:
            break
    return out


def percentiles(lat: list[float]) -> dict:
    if not lat:
        return {"p50_ms": None, "p99_ms": None, "mean_ms": None}
    a = np.asarray(lat) * 1000
    return {"p50_ms": round(float(np.percentile(a, 50)), 1), "p99_ms": round(float(np.percentile(a, 99)), 1),
            "mean_ms": round(float(a.mean()), 1)}


def run_phase(base: str, token: str, endpoint: str, pairs: list[tuple[bytes, bytes]], probes: list[bytes],
              clients: int, seconds: float) -> dict:
    import httpx2

    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    codes: dict[str, int] = {}
    lock = threading.Lock()
    start_at = time.perf_counter() + 0.2
    deadline = start_at + seconds

    def client(i: int) -> None:
        headers = {"Authorization": f"Bearer {token}", "X-Purpose": PURPOSE}
        with httpx2.Client(base_url=base, headers=headers, timeout=30) as http:
            while time.perf_counter() < start_at:
                time.sleep(0.005)
            n = i
            while time.perf_counter() < deadline:  # bounded by the deadline
                t0 = time.perf_counter()
                try:
                    if endpoint == "verify":
                        a, b = pairs[n % len(pairs)]
                        r = http.post("/api/verify", files={"a": ("a.jpg", a, "image/jpeg"),
                                                            "b": ("b.jpg", b, "image/jpeg")})
                    else:
                        r = http.post("/api/search", data={"k": "5"},
                                      files={"image": ("p.jpg", probes[n % len(probes)], "image/jpeg")})
                    ok = r.status_code == 200
                    code = str(r.status_code)
                except httpx2.HTTPError as e:
                    ok, code = False, type(e).__name__
                dt = time.perf_counter() - t0
                if ok:
                    latencies[i].append(dt)
                else:
                    errors[i] += 1
                    with lock:
                        codes[code] = codes.get(code, 0) + 1
                n += clients

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lat = [x for per in latencies for x in per]
    return {"endpoint": f"/api/{endpoint}", "clients": clients, "seconds": seconds, "requests": len(lat),
            "requests_per_s": round(len(lat) / seconds, 2), **percentiles(lat), "errors": sum(errors),
            "error_codes": codes}


def reference_verify(pairs: list[tuple[bytes, bytes]], seconds: float) -> dict:
    """face_recognition's pipeline, in-process, one thread: the same pairs, decoded, detected, described."""
    import io

    import importlib.util

    import dlib
    from PIL import Image

    # The model files of the face_recognition_models package, located without importing it (its __init__ needs
    # pkg_resources, which new setuptools no longer ship).
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("face_recognition_models is not installed")
    models = Path(list(spec.submodule_search_locations)[0]) / "models"
    detector = dlib.get_frontal_face_detector()
    shape = dlib.shape_predictor(str(models / "shape_predictor_5_face_landmarks.dat"))
    encoder = dlib.face_recognition_model_v1(str(models / "dlib_face_recognition_resnet_model_v1.dat"))

    def describe(data: bytes) -> np.ndarray | None:
        rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        boxes = detector(rgb, 1)  # face_recognition's default: upsample once
        if not boxes:
            return None
        box = max(boxes, key=lambda r: r.width() * r.height())
        return np.asarray(encoder.compute_face_descriptor(rgb, shape(rgb, box), 1))

    done = failed = 0
    lat = []
    deadline = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < deadline:
        a, b = pairs[n % len(pairs)]
        t0 = time.perf_counter()
        da, db = describe(a), describe(b)
        if da is None or db is None:
            failed += 1
        else:
            _ = float(np.linalg.norm(da - db)) <= 0.6
            done += 1
        lat.append(time.perf_counter() - t0)
        n += 1
    return {"approach": "face_recognition (dlib HOG + 5-point + ResNet), in-process, 1 thread, no HTTP",
            "seconds": seconds, "verifies": done + failed, "verify_per_s": round((done + failed) / seconds, 2),
            "no_face": failed, **percentiles(lat)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0, help="per endpoint (and for the reference)")
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--workers", type=int, default=2, help="service engines for verify (one per core)")
    ap.add_argument("--people", type=int, default=20)
    ap.add_argument("--lfw", type=Path, default=LFW, help="LFW images folder (default ../shared/datasets/lfw/images)")
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "service_load.json")
    args = ap.parse_args()
    if args.seconds <= 0 or args.seconds > 600 or not 1 <= args.clients <= 64:
        ap.error("--seconds in (0, 600], --clients in [1, 64]")

    import httpx2

    sys.path.insert(0, str(ROOT / "src"))
    from periface.gallery import Gallery
    from periface.service.auth import KeyStore
    from periface.service.core import KEYS_FILE

    load_before = [round(x, 2) for x in os.getloadavg()]
    folks = people(args.people, args.lfw)
    with tempfile.TemporaryDirectory(prefix="periface-load-") as tmp:
        gallery_dir = Path(tmp) / "gallery"
        env = {**os.environ, "PERIFACE_KEY_FILE": str(Path(tmp) / "gallery.key"),
               "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
               "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
        os.environ["PERIFACE_KEY_FILE"] = env["PERIFACE_KEY_FILE"]
        Gallery(gallery_dir).close()  # create it (no model is loaded for that)
        _, token = KeyStore(gallery_dir / KEYS_FILE).create("operator", "load benchmark")
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server = subprocess.Popen([sys.executable, "-c", SERVER, str(gallery_dir), str(port), str(args.workers)],
                                  env=env, cwd=str(ROOT))
        try:
            for _ in range(600):
                try:
                    if httpx2.get(base + "/health", timeout=1).status_code == 200:
                        break
                except httpx2.HTTPError:
                    pass
                if server.poll() is not None:
                    raise SystemExit("the service did not start")
                time.sleep(0.1)
            headers = {"Authorization": f"Bearer {token}", "X-Purpose": PURPOSE}
            t0 = time.perf_counter()
            enrolled = 0
            with httpx2.Client(base_url=base, headers=headers, timeout=60) as http:
                for files in folks:
                    name = files[0].parent.name
                    r = http.post("/api/identities",
                                  data={"name": name, "consent_purpose": "benchmark (public LFW images)",
                                        "consent_collected_by": "benchmark"},
                                  files=[("images", (files[0].name, files[0].read_bytes(), "image/jpeg"))])
                    enrolled += r.status_code == 201
                # Warm every engine in the pool before timing.
                pairs = [(f[1].read_bytes(), f[2].read_bytes()) for f in folks]
                pairs += [(folks[i][1].read_bytes(), folks[(i + 1) % len(folks)][2].read_bytes())
                          for i in range(len(folks))]
                probes = [f[1].read_bytes() for f in folks]
                warm = [threading.Thread(target=lambda: httpx2.post(
                    base + "/api/verify", headers=headers, timeout=60,
                    files={"a": ("a.jpg", pairs[0][0]), "b": ("b.jpg", pairs[0][1])})) for _ in range(args.workers)]
                for t in warm:
                    t.start()
                for t in warm:
                    t.join()
                http.post("/api/search", files={"image": ("p.jpg", probes[0], "image/jpeg")})
            setup_s = time.perf_counter() - t0
            print(f"service up on {base}; enrolled {enrolled}/{len(folks)} people in {setup_s:.1f}s", flush=True)
            verify = run_phase(base, token, "verify", pairs, probes, args.clients, args.seconds)
            print(_line(verify), flush=True)
            search = run_phase(base, token, "search", pairs, probes, args.clients, args.seconds)
            print(_line(search), flush=True)
            audit_ok = httpx2.get(base + "/health").status_code == 200
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()
    reference = None
    if not args.no_reference:
        reference = reference_verify(pairs, args.seconds)
        print(f"reference  {reference['verify_per_s']:.2f} verify/s  p50 {reference['p50_ms']} ms  "
              f"p99 {reference['p99_ms']} ms  ({reference['approach']})", flush=True)
    doc = {
        "benchmark": "service_load",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "omp_num_threads": env["OMP_NUM_THREADS"], "load_average_before": load_before,
                    "load_average_after": [round(x, 2) for x in os.getloadavg()],
                    "note": "the load average counts other jobs sharing the cores; compare runs only at similar load"},
        "workload": {"images": "LFW 250x250 (same and different people)" if args.lfw.exists() else "tests/fixtures",
                     "enrolled": enrolled, "clients": args.clients, "service_workers": args.workers,
                     "seconds_per_endpoint": args.seconds, "loopback": True},
        "verify": verify,
        "search": search,
        "reference": reference,
        "verify_ratio_vs_reference": (round(verify["requests_per_s"] / reference["verify_per_s"], 2)
                                      if reference and reference["verify_per_s"] else None),
        "goal": {"verify_per_s": 20, "p99_ms": 500, "errors": 0,
                 "met": bool(verify["requests_per_s"] >= 20 and (verify["p99_ms"] or 1e9) < 500
                             and verify["errors"] == 0)},
        "service_alive_after": audit_ok,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    if reference:
        print(f"service/reference verify throughput: {doc['verify_ratio_vs_reference']}x")
    print(f"wrote {args.out}")


def _line(r: dict) -> str:
    return (f"{r['endpoint']:<12} {r['requests_per_s']:7.2f} req/s  p50 {r['p50_ms']} ms  p99 {r['p99_ms']} ms  "
            f"errors {r['errors']} {r['error_codes'] or ''}")


if __name__ == "__main__":
    main()
