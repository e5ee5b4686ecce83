"""Build the masked path for one embedder: the unmasking adapter, the fusion weight and the masked calibration.

Training data for the adapter (people who never appear in any LFW evaluation protocol of this project):
  * LFW people with a single image who are absent from pairs.txt (View-2) — in identification they are only
    unmasked gallery distractors, never probes;
  * casia-subset/ (14 people, not in LFW); mask-crops/without_mask/ (real unmasked crops, web sources).
Each training face is embedded unmasked and with ``--renders`` different rendered masks (all kinds, worn
correctly), each masked image detected and aligned again as at run time. The adapter is trained so that
f(masked) ~ unmasked and f(unmasked) ~ unmasked.

The fusion weight (masked references vs adapted probe) is chosen on LFW View-1 pairsDevTrain.txt with masked
probes, and the fused score is calibrated on all different-person pairs of that same set.

    python scripts/train_masked_path.py --embedder sface          # seed 0; ~25 min on 2 cores, cached in .cache/
    python scripts/train_masked_path.py --embedder sface-robust   # the same for the default backbone
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from rich.progress import track
from sklearn.neural_network import MLPRegressor

from periface import Engine
from periface.embed.adapter import EmbeddingAdapter
from periface.evaluation.datasets import require_datasets
from periface.evaluation.lfw import pair_images, people_in, read_pairs
from periface.evaluation.metrics import tar_at_far
from periface.evaluation.pipelines import central, fingerprint_tag, pipeline_fingerprint, stable_seed, with_renderer
from periface.image import load_image
from periface.landmarks.facemesh import shared_landmarker
from periface.mask.render import random_style, render_mask
from periface.masked import PARAMS_FILE, fuse, masked_reference_embeddings, masked_reference_scores
from periface.match import CALIBRATION_DIR, Calibration
from periface.models import PACKAGE_DATA, record_sha256

CACHE = Path(".cache/masked_path")


def training_images(root: Path) -> list[tuple[Path, bool]]:
    """(path, is_crop) of every training face; the list is written next to the adapter."""
    lfw = root / "lfw"
    excluded = people_in([lfw / "pairs.txt"])
    out: list[tuple[Path, bool]] = []
    for person in sorted((lfw / "images").iterdir()):
        imgs = sorted(person.glob("*.jpg"))
        if len(imgs) == 1 and person.name not in excluded:
            out.append((imgs[0], False))
    out += [(p, True) for p in sorted((root / "casia-subset").glob("*/*.jpg"))]
    out += [(p, True) for p in sorted((root / "mask-crops/without_mask").glob("*"))]
    return out


def face_of(engine: Engine, rgb: np.ndarray, is_crop: bool):
    faces = engine.finder.find_in_crop(rgb) if is_crop else engine.finder.find(rgb)
    i = central(faces.boxes, rgb.shape[:2])
    return None if i is None else faces.select(i)


def masked_face(engine: Engine, masked: np.ndarray, is_crop: bool, original):
    """The masked face as run time sees it: detected again; the original landmarks if no detector finds it."""
    faces = engine.finder.find_in_crop(masked) if is_crop else engine.finder.find(masked)
    if len(faces):
        from periface.detect import iou_matrix

        j = int(np.argmax(iou_matrix(original.boxes, faces.boxes)[0]))
        if iou_matrix(original.boxes, faces.boxes)[0, j] > 0.3:
            return faces.select(j)
    return original


def cache_tag(engine: Engine) -> str:
    """Caches here hold embeddings of rendered masks: keyed by the models and by the renderer's code."""
    return fingerprint_tag(with_renderer(pipeline_fingerprint(engine)))


def embed_training_set(engine: Engine, items, renders: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    tag = cache_tag(engine)
    cache = CACHE / f"train-{engine.embedder.name}@{tag}-r{renders}-s{seed}.npz"
    if cache.exists():
        z = np.load(cache)
        return z["plain"], z["masked"]
    landmarker = shared_landmarker()
    plain, masked = [], []
    for path, is_crop in track(items, description="training faces (plain + masked renders)"):
        rgb = load_image(path)
        face = face_of(engine, rgb, is_crop)
        if face is None:
            continue
        mesh = landmarker.landmarks(rgb, face.boxes[0])
        if mesh is None:
            continue
        e_u = engine.embedder.embed(rgb, face.boxes, face.landmarks)[0]
        for r in range(renders):
            rng = np.random.default_rng([seed, stable_seed(str(path)), r])
            img = render_mask(rgb, mesh, random_style(rng, coverage="full"), rng).image
            mf = masked_face(engine, img, is_crop, face)
            plain.append(e_u)
            masked.append(engine.embedder.embed(img, mf.boxes, mf.landmarks)[0])
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(cache, plain=np.array(plain), masked=np.array(masked))
    return np.array(plain), np.array(masked)


def train_adapter(plain: np.ndarray, masked: np.ndarray, seed: int) -> EmbeddingAdapter:
    # Inputs: masked embeddings, plus every other unmasked one (so that f(unmasked) stays put); target: the
    # residual that brings each input to its unmasked embedding.
    x = np.concatenate([masked, plain[::2]])
    t = np.concatenate([plain, plain[::2]])
    mlp = MLPRegressor(hidden_layer_sizes=(256,), alpha=1e-3, learning_rate_init=1e-3, max_iter=200,
                       early_stopping=True, validation_fraction=0.1, n_iter_no_change=10, random_state=seed)
    mlp.fit(x, t - x)
    (w1, w2), (b1, b2) = mlp.coefs_, mlp.intercepts_
    return EmbeddingAdapter(w1.T, b1, w2.T, b2)


def view1_masked(engine: Engine, images: list[str], root: Path, variants: int, seed: int):
    """Per View-1 image: plain embedding, masked-probe embedding, and ``variants`` masked-reference embeddings."""
    tag = cache_tag(engine)
    cache = CACHE / f"view1-{engine.embedder.name}@{tag}-k{variants}-s{seed}.npz"
    if cache.exists():
        z = np.load(cache)
        return z["plain"], z["probe"], z["refs"]
    d = engine.embedder.dim
    plain = np.full((len(images), d), np.nan, np.float32)
    probe = np.full((len(images), d), np.nan, np.float32)
    refs = np.full((len(images), variants, d), np.nan, np.float32)
    landmarker = shared_landmarker()
    for i, rel in enumerate(track(images, description="View-1 faces (plain, masked probe, masked references)")):
        rgb = load_image(root / rel)
        face = face_of(engine, rgb, False)
        if face is None:
            continue
        plain[i] = engine.embedder.embed(rgb, face.boxes, face.landmarks)[0]
        k = masked_reference_embeddings(engine.embedder, rgb, face.boxes[0], face.landmarks[0], variants,
                                        seed=stable_seed(rel, "reference"))
        refs[i, : len(k)] = k
        mesh = landmarker.landmarks(rgb, face.boxes[0])
        if mesh is not None:
            rng = np.random.default_rng([seed + 1, stable_seed(rel, "probe")])
            img = render_mask(rgb, mesh, random_style(rng, coverage="full"), rng).image
            mf = masked_face(engine, img, False, face)
            probe[i] = engine.embedder.embed(img, mf.boxes, mf.landmarks)[0]
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(cache, plain=plain, probe=probe, refs=refs)
    return plain, probe, refs


def masked_scores(probe: np.ndarray, plain: np.ndarray, refs: np.ndarray, adapter, w: float) -> np.ndarray:
    """(P, R) fused scores of masked probes against references (plain vectors + masked variants)."""
    adapted = adapter(np.nan_to_num(probe)) if adapter is not None else np.nan_to_num(probe)
    s_adapted = adapted @ np.nan_to_num(plain).T
    s_refs = masked_reference_scores(np.nan_to_num(probe), refs)
    return fuse(s_adapted, s_refs, w)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--embedder", default="sface")
    ap.add_argument("--renders", type=int, default=2)
    ap.add_argument("--variants", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    root = require_datasets()
    engine = Engine(args.embedder)
    items = training_images(root)
    plain, masked = embed_training_set(engine, items, args.renders, args.seed)
    print(f"training pairs: {len(plain)} from {len(items)} images")
    adapter = train_adapter(plain, masked, args.seed)
    adapter_name = f"adapter_{args.embedder}.npz"

    lfw = root / "lfw"
    pairs = read_pairs(lfw / "pairsDevTrain.txt")
    images = pair_images(pairs)
    index = {p: i for i, p in enumerate(images)}
    v_plain, v_probe, v_refs = view1_masked(engine, images, lfw / "images", args.variants, args.seed)
    same = np.array([p.same for p in pairs])
    ia = np.array([index[p.a] for p in pairs])
    ib = np.array([index[p.b] for p in pairs])
    # Every combination is a candidate, the plain probe included: a backbone already trained on masks (sface-robust)
    # may not gain from the adapter, and then it is not shipped.
    results, options = {}, {}
    for with_adapter in (False, True):
        for w in np.round(np.linspace(0.0, 1.0, 11), 1):
            if with_adapter and w == 1.0:
                continue  # masked references alone: the adapter plays no part
            key = ("adapter" if with_adapter else "plain") + ("" if w == 0 else f"+masked_refs_w{w:.1f}")
            adp = adapter if with_adapter else None
            s = np.array([masked_scores(v_probe[b:b + 1], v_plain[a:a + 1], v_refs[a:a + 1], adp, w)[0, 0]
                          for a, b in zip(ia, ib)])
            results[key], options[key] = tar_at_far(s, same, 1e-2)[0], (with_adapter, float(w))
            print(f"View-1 DevTrain, masked probe, {key}: TAR@FAR1e-2 = {results[key]:.4f}")
    best = max(results, key=lambda k: (results[k], -len(k)))  # ties go to the simpler method
    with_adapter, w = options[best]
    if best == "plain":
        print("the plain backbone is best on View-1: no masked path is written")
        return 0
    if with_adapter:
        adapter.save(PACKAGE_DATA / adapter_name)
        record_sha256(PACKAGE_DATA / adapter_name)
        listing = "\n".join(str(p.relative_to(root)) for p, _ in items)
        (PACKAGE_DATA / f"adapter_{args.embedder}_train_list.sha256").write_text(
            hashlib.sha256(listing.encode()).hexdigest() + f"  {len(items)} images (see scripts/train_masked_path.py)\n")
    else:
        adapter, adapter_name = None, None
    # Calibration: every different-person (masked probe, reference) pair among the View-1 images.
    people = np.array([p.split("/")[0] for p in images])
    ok = np.isfinite(v_probe).all(1) & np.isfinite(v_plain).all(1)
    sims = masked_scores(v_probe[ok], v_plain[ok], v_refs[ok], adapter, w)
    diff = people[ok][:, None] != people[ok][None, :]
    cal = Calibration.from_scores(f"{args.embedder}-masked", sims[diff],
                                  "LFW View-1 pairsDevTrain.txt: all different-person (masked probe, reference) pairs, fused masked-path score")
    (CALIBRATION_DIR / f"{args.embedder}-masked.json").write_text(json.dumps(cal.to_json(), indent=1))
    doc = json.loads(PARAMS_FILE.read_text()) if PARAMS_FILE.exists() else {}
    doc[args.embedder] = {"params": {"variants": args.variants, "weight_masked_refs": w, "adapter": adapter_name},
                          "chosen": best, "chosen_on": "LFW View-1 pairsDevTrain, masked probes, TAR at FAR 1e-2",
                          "view1_tar_at_far_1e-2": results, "adapter_training_pairs": int(len(plain)), "seed": args.seed}
    PARAMS_FILE.write_text(json.dumps(doc, indent=1))
    print(json.dumps(doc[args.embedder], indent=1))
    print(json.dumps(cal.to_json()["shipped"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
