"""One search per video track: the mean of its best frames' faces against one frame, on LFW, vs face_recognition.

    python benchmarks/track_search.py          # results/track_search.json (caches shared with periface eval lfw-identify)

``periface watch --gallery`` searches each track once. A track is stood in for by three masked pictures of one
person: LFW's identification sets (``periface eval lfw-identify``: the gallery holds one unmasked picture of each of
5,7xx people), every person with at least three mated probes, the first three, each with a rendered mask (seed 0).
periface: the masked path as routed (``method_similarities(...)["routed"]``), one picture at a time against the mean
of the three (``periface.match.mean_probe``, what ``Gallery.search`` does with a list of pictures). face_recognition,
in the same run, on the same masked pictures: its 128-d encodings ranked by Euclidean distance, one picture at a time
against the mean of the three encodings.

LFW's pictures of a person are different photos (other days, light, pose), so three of them vary more than three
frames of one video: the gain here is an upper bound of what a track gains.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _common import write_result  # noqa: E402

from periface import Engine  # noqa: E402
from periface.evaluation.datasets import require_datasets  # noqa: E402
from periface.evaluation.identification import lfw_identification_sets  # noqa: E402
from periface.evaluation.masked_eval import embed_reference_variants, method_similarities, probe_pipeline  # noqa: E402
from periface.evaluation.metrics import cmc  # noqa: E402
from periface.evaluation.pipelines import (EmbeddingCache, embed_paths, periface_pipeline,  # noqa: E402
                                          pipeline_fingerprint, reference_pipeline)
from periface.evaluation.reference import FaceRecognitionReference  # noqa: E402
from periface.evaluation.verification import make_masker  # noqa: E402
from periface.match import mean_probe  # noqa: E402

NAME, BACKBONE, FRAMES, SEED = "periface-sface-robust", "sface-robust", 3, 0


def tracks_of(mated: list[str]) -> dict[str, list[str]]:
    by_person: dict[str, list[str]] = defaultdict(list)
    for path in mated:
        by_person[path.split("/")[0]].append(path)
    return {name: paths[:FRAMES] for name, paths in sorted(by_person.items()) if len(paths) >= FRAMES}


def summary(rows: list[np.ndarray], gallery_ids: np.ndarray, truth: list[str]) -> dict:
    """Rank-1/5/10 of searches given as rows of scores over the gallery (higher is better; NaN: no face, a miss)."""
    curve = cmc(np.stack(rows), gallery_ids, np.array(truth), max_rank=10)
    return {"searches": len(rows), "rank1": float(curve[0]), "rank5": float(curve[4]), "rank10": float(curve[9])}


def periface_rows(images: Path, sets: dict, tracks: dict[str, list[str]]) -> dict:
    engine = Engine(BACKBONE)
    d = engine.embedder.dim
    g = embed_paths(sets["gallery"], images, periface_pipeline(engine),
                    EmbeddingCache(NAME, "none", pipeline_fingerprint(engine)), d)
    refs = embed_reference_variants(sets["gallery"], images, engine, NAME)
    probe_cache = EmbeddingCache(NAME, f"masked-probe-routed-s{SEED}", pipeline_fingerprint(engine, routed=True))
    q = embed_paths([p for ps in tracks.values() for p in ps], images, probe_pipeline(engine), probe_cache, d + 1,
                    make_masker(SEED, {}))
    keep = [p for p in sets["gallery"] if np.isfinite(g[p]).all()]
    gx, rx, ids = np.stack([g[p] for p in keep]), np.stack([refs[p] for p in keep]), np.array([p.split("/")[0] for p in keep])
    one, mean = [], []
    for paths in tracks.values():
        rows = np.stack([q[p] for p in paths])
        one += list(method_similarities(engine, rows, gx, rx)["routed"])
        found = np.isfinite(rows).all(axis=1)
        if not found.any():
            mean.append(np.full(len(ids), np.nan))
            continue
        vector, masked, _ = mean_probe(rows[found, :d], rows[found, d] > 0.5)
        probe = np.append(vector, np.float32(masked))[None]
        mean.append(method_similarities(engine, probe, gx, rx)["routed"][0])
    names = list(tracks)
    return {"one picture": summary(one, ids, [n for n in names for _ in range(FRAMES)]),
            f"mean of {FRAMES}": summary(mean, ids, names)}


def face_recognition_rows(images: Path, sets: dict, tracks: dict[str, list[str]]) -> dict:
    ref = FaceRecognitionReference()
    run = reference_pipeline(ref)
    g = embed_paths(sets["gallery"], images, run, EmbeddingCache("face_recognition", "none", ref.fingerprint), ref.dim)
    q = embed_paths([p for ps in tracks.values() for p in ps], images, run,
                    EmbeddingCache("face_recognition", f"masked-s{SEED}", ref.fingerprint), ref.dim, make_masker(SEED, {}))
    keep = [p for p in sets["gallery"] if np.isfinite(g[p]).all()]
    gx, ids = np.stack([g[p] for p in keep]), np.array([p.split("/")[0] for p in keep])

    def scores(x: np.ndarray) -> np.ndarray:  # face_recognition's own measure: the smaller the distance, the better
        return -np.linalg.norm(gx - x, axis=1) if np.isfinite(x).all() else np.full(len(gx), np.nan)

    one, mean = [], []
    for paths in tracks.values():
        rows = np.stack([q[p] for p in paths])
        one += [scores(x) for x in rows]
        found = rows[np.isfinite(rows).all(axis=1)]
        mean.append(scores(found.mean(axis=0)) if len(found) else np.full(len(ids), np.nan))
    names = list(tracks)
    return {"one picture": summary(one, ids, [n for n in names for _ in range(FRAMES)]),
            f"mean of {FRAMES}": summary(mean, ids, names)}


def main() -> int:
    images = require_datasets() / "lfw" / "images"
    sets = lfw_identification_sets(images, None, SEED)
    tracks = tracks_of(sets["mated"])
    doc = {"people": len(tracks), "pictures_per_track": FRAMES, "gallery": len(sets["gallery"]),
           "periface": periface_rows(images, sets, tracks), "face_recognition": face_recognition_rows(images, sets, tracks)}
    doc["rank1_ratio_to_face_recognition"] = {
        k: round(doc["periface"][k]["rank1"] / doc["face_recognition"][k]["rank1"], 3) for k in doc["periface"]}
    path = write_result("track_search", doc)
    print(f"{len(tracks)} people, {FRAMES} masked pictures each, gallery of {len(sets['gallery'])}")
    for who in ("periface", "face_recognition"):
        for k, r in doc[who].items():
            print(f"{who:17s} {k:12s} rank-1 {r['rank1']:.3f}  rank-5 {r['rank5']:.3f}  rank-10 {r['rank10']:.3f}  "
                  f"({r['searches']} searches)")
    print(f"rank-1 periface / face_recognition: {doc['rank1_ratio_to_face_recognition']}")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
