"""Distil SFace into a mask-robust SFace: student(masked face) -> teacher(same face unmasked), on the CPU.

The int8 SFace trunk stays frozen and is run by onnxruntime exactly as at inference; its outputs (after unit conv_13,
1024x7x7, or after conv_12 / conv_11, 512x14x14, for the deeper stages) are cached for 4 versions of every training
face (round 0; rounds 1 and 2 add three more masked ones): unmasked, two renders of the project's mask
renderer drawn on the full photo (then detected and aligned again, as at run time), and one crude random occluder.
The first shipped model (v5, "head" stages) fine-tuned bn1 + pre_fc1 + fc1 on conv_14's output; ``--stages conv14``
also trains conv_14, ``--stages conv13`` conv_13 (from trunk outputs cached after conv_12, ``features --cut conv_12``)
and ``--stages conv12`` conv_12 as well (cached after conv_11, ``features --cut conv_11``): the shipped v8 (sixth
session; v7, the same with unmasked samples weighted 4x, gave 99.28% unmasked View-2, under the 99.3% floor).
Teacher = the original SFace on the unmasked crop of the same photo. Loss: (1 - cos) to the teacher for every sample
(unmasked ones weighted ``--plain-weight`` x: 8 for v8, 4 before) + 0.1 x InfoNCE against the other faces' teacher
embeddings in the batch (other photos of the same person masked out).

Training people never appear in the evaluation: LFW people absent from pairs.txt (View-2) *and* from
pairsDevTrain/pairsDevTest (View-1, used for calibration), all of casia-subset/, all of mask-crops/without_mask/.
mask-crops/with_mask/ is never trained on: it is the real-mask check.

The shipped v8 is built by (outputs under .cache/robust/, git-ignored; the train step ~41 min on two cores; v7 went
through the same chain with ``--plain-weight 4`` in the fifth session and was rolled back; the first shipped v5 comes
from the round-0 `features` and the v5 `train` lines of the second block, then the same export and calibration steps):

    python scripts/finetune_masked.py list                                  # -> src/periface/data/robust/train_list.txt
    for r in 0 1 2; do for s in 0 1 2 3; do python scripts/finetune_masked.py render --round $r --shard $s --of 4
                                             python scripts/finetune_masked.py features --cut conv_11 --round $r --shard $s --of 4; done; done
    python scripts/finetune_masked.py train --tag v8 --stages conv12 --epochs 4 --lr 5e-5 --plain-weight 8 --rounds 2 --threads 2
    python scripts/finetune_masked.py export --tag v8 --ship                # -> data/robust/*.onnx + SHA256SUMS
    for s in 0 1 2 3; do python scripts/finetune_masked.py eval-render --set view2 --shard $s --of 4; done
    for s in 0 1; do python scripts/finetune_masked.py eval-render --set dev --shard $s --of 2; done
    python scripts/finetune_masked.py eval-render --set view1
    python scripts/finetune_masked.py eval-render --set real
    python scripts/finetune_masked.py evaluate --ship --baseline            # -> data/robust/report.json
    python scripts/calibrate.py --embedder sface-robust                     # -> data/calibration/sface-robust.json
    python scripts/train_masked_path.py --embedder sface-robust             # -> data/masked_path.json, calibration/*-masked.json

(``render`` without ``--round`` is round 0; ``--round`` 1 and 2 draw new masks for the same faces.) The heads compared
on the way (docs/robust_backbone.md), from the same renders:

    for r in 0 1 2; do for s in 0 1 2 3; do python scripts/finetune_masked.py features --round $r --shard $s --of 4; done; done
    python scripts/finetune_masked.py train --tag v5 --epochs 6 --lr 5e-5 --plain-weight 4          # first shipped
    python scripts/finetune_masked.py train --tag v6 --epochs 6 --lr 5e-5 --plain-weight 4 --rounds 2 --threads 2
    python scripts/finetune_masked.py train --tag v6c --stages conv14 --epochs 4 --lr 5e-5 --plain-weight 4 --rounds 2 --threads 2
    for r in 0 1 2; do for s in 0 1 2 3; do python scripts/finetune_masked.py features --cut conv_12 --round $r --shard $s --of 4; done; done
    python scripts/finetune_masked.py train --tag v6d --stages conv13 --epochs 4 --lr 5e-5 --plain-weight 4 --rounds 2 --threads 2
    python scripts/finetune_masked.py train --tag v6e --stages conv13 --epochs 4 --lr 5e-5 --plain-weight 8 --rounds 2 --threads 2
    python scripts/finetune_masked.py train --tag v7 --stages conv12 --epochs 4 --lr 5e-5 --plain-weight 4 --rounds 2 --threads 2
    for r in 0 1 2; do for s in 0 1 2 3; do python scripts/finetune_masked.py features --cut conv_10 --round $r --shard $s --of 4; done; done
    python scripts/finetune_masked.py train --tag v9 --stages conv11 --epochs 4 --lr 5e-5 --plain-weight 8 --rounds 2 --threads 2  # not shipped
    for t in v6 v6c v6d v6e v7; do python scripts/finetune_masked.py export --tag $t; done
    python scripts/finetune_masked.py evaluate --tags v6 v6c v6d v6e --baseline  # View-2 and dev_view1 numbers per head
    python scripts/finetune_masked.py evaluate --tags v6d --mirror             # the same, mirror-averaged, on the crops
    python scripts/finetune_masked.py norm --tag v5                          # score normalisation, first shipped head

The shipped embedder averages each face with its mirror image (``RobustSFaceEmbedder(flip=True)``); ``--flip``
evaluates exactly that on the cached crops, the other rows are single-pass heads on cached trunk outputs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from periface.evaluation.datasets import require_datasets  # noqa: E402
from periface.evaluation.lfw import pair_labels, read_pairs  # noqa: E402
from periface.evaluation.pipelines import central, stable_seed  # noqa: E402

CACHE = ROOT / ".cache" / "robust"
DATA = ROOT / "src" / "periface" / "data" / "robust"
TRAIN_LIST = DATA / "train_list.txt"
SEED = 20261128
RENDERS = 2  # masked renders per training photo
CUT = "conv_13"  # trunk output = input of the trained head (1024 x 7 x 7)
CASIA_PAD, CASIA_SCALE = 40, 2.0  # casia crops are tight 96x112: give the detector and Face Mesh some context


# ----------------------------------------------------------------------------------------------------------- list
def build_list() -> list[tuple[str, str, str]]:
    ds = require_datasets()
    lfw = ds / "lfw"
    held_out: set[str] = set()
    for f in ("pairs.txt", "pairsDevTrain.txt", "pairsDevTest.txt"):
        for p in read_pairs(lfw / f):
            held_out.update((p.a.split("/")[0], p.b.split("/")[0]))
    rows: list[tuple[str, str, str]] = []
    for person in sorted(d.name for d in (lfw / "images").iterdir()):
        if person not in held_out:
            rows += [("lfw", person, f"lfw/images/{person}/{f.name}") for f in sorted((lfw / "images" / person).glob("*.jpg"))]
    for person in sorted(d.name for d in (ds / "casia-subset").iterdir() if d.is_dir()):
        rows += [("casia", person, f"casia-subset/{person}/{f.name}") for f in sorted((ds / "casia-subset" / person).glob("*.jpg"))]
    for f in sorted((ds / "mask-crops" / "without_mask").iterdir()):
        if f.suffix.lower() in {".jpg", ".jpeg", ".png"}:
            rows.append(("without_mask", f"wm:{f.stem}", f"mask-crops/without_mask/{f.name}"))
    return rows


def cmd_list(_: argparse.Namespace) -> None:
    rows = build_list()
    DATA.mkdir(parents=True, exist_ok=True)
    text = "".join(f"{s}\t{i}\t{p}\n" for s, i, p in rows)
    TRAIN_LIST.write_text("# source<TAB>identity<TAB>path under ../shared/datasets; built by scripts/finetune_masked.py list\n" + text)
    counts = {s: sum(1 for r in rows if r[0] == s) for s in ("lfw", "casia", "without_mask")}
    people = {s: len({r[1] for r in rows if r[0] == s}) for s in ("lfw", "casia")}
    print(json.dumps({"images": counts, "people": people, "sha256": hashlib.sha256(text.encode()).hexdigest()}))


def read_list() -> list[tuple[str, str, str]]:
    return [tuple(ln.split("\t")) for ln in TRAIN_LIST.read_text().splitlines() if ln and not ln.startswith("#")]


# --------------------------------------------------------------------------------------------------------- render
def _prepare(source: str, rgb: np.ndarray) -> np.ndarray:
    if source == "casia":
        rgb = cv2.copyMakeBorder(rgb, CASIA_PAD, CASIA_PAD, CASIA_PAD, CASIA_PAD, cv2.BORDER_REPLICATE)
        rgb = cv2.resize(rgb, None, fx=CASIA_SCALE, fy=CASIA_SCALE, interpolation=cv2.INTER_CUBIC)
    return rgb


def _landmarks(finder, rgb: np.ndarray, crop: bool) -> np.ndarray | None:
    faces = finder.find_in_crop(rgb) if crop else finder.find(rgb)
    i = central(faces.boxes, rgb.shape[:2])
    return None if i is None else faces.landmarks[i]


def _shard_file(stem: str, args: argparse.Namespace, suffix: str) -> Path:
    """Round 0 is the base cache (render_0of4.npz ...); round R > 0 adds more masked samples of the same faces."""
    rounds = f"_r{args.round}" if args.round else ""
    return CACHE / f"{stem}{rounds}_{args.shard}of{args.of}{suffix}"


def cmd_render(args: argparse.Namespace) -> None:
    from periface.align import align_faces
    from periface.detect import FaceFinder
    from periface.image import load_image
    from periface.mask.render import COVERAGES, add_mask, random_style

    ds = require_datasets()
    rows = read_list()[args.shard :: args.of]
    finder = FaceFinder.default()
    n = len(rows)
    plain = np.zeros((n, 112, 112, 3), np.uint8)
    masked = np.zeros((n, RENDERS, 112, 112, 3), np.uint8)
    status = np.zeros((n, RENDERS), np.int8)  # 0 no mask rendered, 1 found on the masked photo, 2 aligned as unmasked
    found = np.zeros(n, bool)
    styles: list[list[str]] = []
    t0 = time.time()
    for j, (source, _, rel) in enumerate(rows):
        rgb = _prepare(source, load_image(ds / rel))
        crop = source == "without_mask"
        lm = _landmarks(finder, rgb, crop)
        styles.append([])
        if lm is None:
            continue
        found[j] = True
        plain[j] = align_faces(rgb, lm[None], 112)[0]
        for k in range(RENDERS):
            seed = stable_seed(rel, "train", str(k), str(SEED), *([f"round{args.round}"] if args.round else []))
            srng = np.random.default_rng(seed + 1)
            coverage = COVERAGES[(j + k + args.round) % 3] if k == 0 else None  # every coverage, not only the likely one
            res = add_mask(rgb, seed=seed, style=random_style(srng, coverage=coverage))
            if res is None:
                styles[-1].append("")
                continue
            styles[-1].append(json.dumps(res.style.describe()))
            mlm = _landmarks(finder, res.image, crop)
            status[j, k] = 1 if mlm is not None else 2
            masked[j, k] = align_faces(res.image, (lm if mlm is None else mlm)[None], 112)[0]
        if j % 100 == 0:
            print(f"shard {args.shard}: {j}/{n} {time.time() - t0:.0f}s", flush=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    np.savez(_shard_file("render", args, ".npz"), paths=np.array([r[2] for r in rows]), plain=plain,
             masked=masked, status=status, found=found,
             styles=np.array([json.dumps(s) for s in styles]))
    print(f"shard {args.shard}: {n} photos, {found.sum()} faces, masks {np.bincount(status.ravel(), minlength=3).tolist()}, "
          f"{time.time() - t0:.0f}s")


# ------------------------------------------------------------------------------------------------------- features
KINDS = ("plain", "render0", "render1", "occluder")  # the 4 samples cached per training face


def _misalign(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A small similarity jitter, as a detector's landmarks would give: +-3 px, +-6 degrees, 0.94..1.06."""
    m = cv2.getRotationMatrix2D((56 + rng.uniform(-2, 2), 60 + rng.uniform(-2, 2)), rng.uniform(-6, 6),
                                rng.uniform(0.94, 1.06))
    m[:, 2] += rng.uniform(-3, 3, 2)
    return cv2.warpAffine(img, m, (112, 112), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _photometric(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    x = img.astype(np.float32)
    if rng.random() < 0.8:  # brightness, contrast, saturation, colour cast, gamma
        grey = x.mean(axis=2, keepdims=True)
        x = grey + (x - grey) * rng.uniform(0.6, 1.3)
        x = (x - x.mean()) * rng.uniform(0.75, 1.25) + x.mean() + rng.uniform(-25, 25)
        x = x * rng.uniform(0.92, 1.08, 3)
        x = 255.0 * (np.clip(x, 0, 255) / 255.0) ** rng.uniform(0.8, 1.25)
    x = np.clip(x, 0, 255).astype(np.uint8)
    if rng.random() < 0.25:
        x = cv2.GaussianBlur(x, (0, 0), rng.uniform(0.5, 1.4))
    if rng.random() < 0.2:  # low resolution
        s = int(rng.integers(28, 64))
        x = cv2.resize(cv2.resize(x, (s, s), interpolation=cv2.INTER_AREA), (112, 112), interpolation=cv2.INTER_LINEAR)
    if rng.random() < 0.2:
        ok, buf = cv2.imencode(".jpg", x, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(30, 80))])
        x = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return x


def _occluder(img: np.ndarray, rng: np.random.Generator, donor: np.ndarray) -> np.ndarray:
    """Cover the lower face (template coordinates: nose tip y=71.7, mouth y=92) with a random flat, noisy,
    striped or borrowed texture, so that the model learns "ignore the lower face", not one renderer's look."""
    top = rng.uniform(60, 82)
    sag = rng.uniform(-4, 8)
    xl, xr = rng.uniform(4, 30), rng.uniform(82, 108)
    tilt = rng.uniform(-5, 5)
    pts = [(xl, top + sag + tilt), (xl + (56 - xl) * 0.5, top + sag * 0.3 + tilt / 2), (56, top),
           (xr - (xr - 56) * 0.5, top + sag * 0.3 - tilt / 2), (xr, top + sag - tilt),
           (xr - rng.uniform(0, 18), 116), (xl + rng.uniform(0, 18), 116)]
    alpha = np.zeros((112, 112), np.float32)
    cv2.fillPoly(alpha, [np.round(np.array(pts) * 4).astype(np.int32)], 1.0, lineType=cv2.LINE_AA, shift=2)
    alpha = cv2.GaussianBlur(alpha, (0, 0), rng.uniform(0.4, 1.5))[..., None]
    choice = rng.integers(4)
    colour = rng.uniform(0, 255, 3)
    if choice == 0:
        tex = np.broadcast_to(colour, (112, 112, 3)).astype(np.float32)
    elif choice == 1:
        noise = cv2.resize(rng.normal(0, 1, (int(rng.integers(4, 28)),) * 2).astype(np.float32), (112, 112))
        tex = colour + noise[..., None] * rng.uniform(5, 40)
    elif choice == 2:
        yy, xx = np.mgrid[0:112, 0:112].astype(np.float32)
        period, angle = rng.uniform(4, 16), rng.uniform(0, np.pi)
        stripe = (np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period) > 0)[..., None]
        tex = np.where(stripe, colour, rng.uniform(0, 255, 3)).astype(np.float32)
    else:
        y0, x0 = rng.integers(0, 56, 2)
        tex = cv2.resize(donor[y0 : y0 + 56, x0 : x0 + 56], (112, 112)).astype(np.float32)
    shade = np.linspace(rng.uniform(0.7, 1.1), rng.uniform(0.7, 1.1), 112, dtype=np.float32)
    tex = tex * (shade[None, :, None] if rng.random() < 0.5 else shade[:, None, None])
    return np.clip(img * (1 - alpha) + tex * alpha, 0, 255).astype(np.uint8)


# Where the cached trunk may stop: unit -> (feature-file stem, shape of its output)
CUTS = {"conv_13": ("feat", (1024, 7, 7)), "conv_12": ("feat12", (512, 14, 14)), "conv_11": ("feat11", (512, 14, 14)),
        "conv_10": ("feat10", (512, 14, 14))}


def _trunk_session(cut: str = CUT):
    from periface.embed.robust import session, sface_trunk

    return session(sface_trunk(f"{cut}_relu"), threads=1)


def trunk_features(sess, crops: np.ndarray, batch: int = 16, cut: str = CUT) -> np.ndarray:
    """(N, 112, 112, 3) uint8 RGB -> (N, C, H, W) float16, the frozen int8 trunk's output after unit ``cut``."""
    out = np.zeros((len(crops), *CUTS[cut][1]), np.float16)
    for i in range(0, len(crops), batch):
        x = crops[i : i + batch].astype(np.float32).transpose(0, 3, 1, 2)
        out[i : i + batch] = sess.run(None, {"data": np.ascontiguousarray(x)})[0]
    return out


def cmd_features(args: argparse.Namespace) -> None:
    z = np.load(_shard_file("render", args, ".npz"))
    rng = np.random.default_rng(SEED + 1000 * (args.round + 1) + args.shard)
    keep = np.flatnonzero(z["found"])
    plain, masked, status = z["plain"][keep], z["masked"][keep], z["status"][keep]
    crops = np.zeros((len(keep), len(KINDS), 112, 112, 3), np.uint8)
    for j in range(len(keep)):
        donor = plain[rng.integers(len(plain))]
        crops[j, 0] = plain[j]
        for k in range(RENDERS):
            src = masked[j, k] if status[j, k] > 0 else _occluder(plain[j], rng, donor)
            crops[j, 1 + k] = _photometric(_misalign(src, rng) if rng.random() < 0.5 else src, rng)
        occ = _occluder(plain[j], rng, donor)
        crops[j, 3] = _photometric(_misalign(occ, rng) if rng.random() < 0.5 else occ, rng)
    if args.round:  # extra rounds add masked samples only: the plain crop is already in round 0
        crops = crops[:, 1:]
    t0 = time.time()
    stem = CUTS[args.cut][0]
    feats = trunk_features(_trunk_session(args.cut), crops.reshape(-1, 112, 112, 3), cut=args.cut)
    np.save(_shard_file(stem, args, ".npy"), feats)
    np.savez(_shard_file(stem, args, "_meta.npz"), paths=z["paths"][keep], status=status,
             sample_crops=crops[:: max(1, len(keep) // 48)])
    print(f"features shard {args.shard} round {args.round}: {len(keep)} faces x {crops.shape[1]} samples, "
          f"{time.time() - t0:.0f}s")


# ---------------------------------------------------------------------------------------------------- eval-render
def eval_items(which: str) -> list[tuple[str, str, bool, bool]]:
    """(key, file, masked, crop) for a set: view2 (every pair image unmasked + every second image masked by the
    project's renderer, seed 0: exactly what ``evaluate_pairs(mask="probe")`` sees), view1 (pairsDevTrain images
    not already in view2, unmasked), dev (View-1: pairsDevTrain + pairsDevTest, every image unmasked + every second
    image masked as in view2; the set on which training variants are compared, so that View-2 stays a test),
    real (mask-crops/with_mask, MaskedFace-Net synthetic_correct, 600 of without_mask)."""
    ds = require_datasets()
    items: list[tuple[str, str, bool, bool]] = []
    if which == "dev":
        dev = _dev_pairs()
        items = [(p, f"lfw/images/{p}", False, False) for p in sorted({p.a for p in dev} | {p.b for p in dev})]
        items += [(p, f"lfw/images/{p}", True, False) for p in sorted({p.b for p in dev})]
    elif which in ("view2", "view1"):
        v2 = read_pairs(ds / "lfw" / "pairs.txt")
        images2 = sorted({p.a for p in v2} | {p.b for p in v2})
        if which == "view2":
            items = [(p, f"lfw/images/{p}", False, False) for p in images2]
            items += [(p, f"lfw/images/{p}", True, False) for p in sorted({p.b for p in v2})]
        else:
            v1 = read_pairs(ds / "lfw" / "pairsDevTrain.txt")
            items = [(p, f"lfw/images/{p}", False, False) for p in sorted(({p.a for p in v1} | {p.b for p in v1}) - set(images2))]
    else:
        for sub, limit in (("with_mask", None), ("synthetic_correct", None), ("without_mask", 600)):
            files = sorted(f.name for f in (ds / "mask-crops" / sub).iterdir())[:limit]
            items += [(f"{sub}/{f}", f"mask-crops/{sub}/{f}", False, True) for f in files]
    return items


def _dev_pairs() -> list:
    lfw = require_datasets() / "lfw"
    return read_pairs(lfw / "pairsDevTrain.txt") + read_pairs(lfw / "pairsDevTest.txt")


def cmd_eval_render(args: argparse.Namespace) -> None:
    from periface.align import align_faces
    from periface.detect import FaceFinder
    from periface.evaluation.verification import make_masker
    from periface.image import load_image

    ds = require_datasets()
    items = eval_items(args.set)[args.shard :: args.of]
    finder = FaceFinder.default()
    masker = make_masker(0)
    crops = np.zeros((len(items), 112, 112, 3), np.uint8)
    found = np.zeros(len(items), bool)
    t0 = time.time()
    for j, (key, rel, masked, crop) in enumerate(items):
        rgb = load_image(ds / rel)
        if masked:
            rgb = masker(rgb, key)
        lm = _landmarks(finder, rgb, crop)
        if lm is not None:
            found[j] = True
            crops[j] = align_faces(rgb, lm[None], 112)[0]
        if j % 200 == 0:
            print(f"{args.set} {args.shard}: {j}/{len(items)} {time.time() - t0:.0f}s", flush=True)
    feats = trunk_features(_trunk_session(), crops)
    CACHE.mkdir(parents=True, exist_ok=True)
    out = CACHE / f"eval_{args.set}_{args.shard}of{args.of}.npz"
    np.savez(out, keys=np.array([i[0] for i in items]), masked=np.array([i[2] for i in items]), found=found,
             crops=crops, feats=feats)
    print(f"{args.set} {args.shard}: {len(items)} images, {int((~found).sum())} without face, {time.time() - t0:.0f}s")


# ---------------------------------------------------------------------------------------------------------- train
TRAINED_UNITS = {  # --stages: the trunk units trained besides the head (bn1, pre_fc1, fc1)
    "head": [],
    "conv14": ["conv_14_dw", "conv_14"],
    "conv13": ["conv_13_dw", "conv_13", "conv_14_dw", "conv_14"],
    "conv12": ["conv_12_dw", "conv_12", "conv_13_dw", "conv_13", "conv_14_dw", "conv_14"],
    "conv11": ["conv_11_dw", "conv_11", "conv_12_dw", "conv_12", "conv_13_dw", "conv_13", "conv_14_dw", "conv_14"],
}
STAGE_CUT = {"head": CUT, "conv14": CUT, "conv13": "conv_12", "conv12": "conv_11",
              "conv11": "conv_10"}  # cached trunk output per --stages
def _load_train(rounds: int = 0, cut: str = CUT) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Trunk features (S, C, H, W) float16 after unit ``cut`` for every sample, its face index and kind (index into
    KINDS), and the identity index per face. Round 0 gives 4 samples per face (plain first), each extra round 3
    masked ones."""
    ident = {r[2]: r[1] for r in read_list()}
    feats, faces, kinds, paths = [], [], [], []
    stem0 = CUTS[cut][0]
    shards = [s for s in range(4) if (CACHE / f"{stem0}_{s}of4_meta.npz").exists()]
    print(f"training on {stem0} shards {shards}, {rounds} extra rounds", flush=True)
    for shard in shards:
        meta = np.load(CACHE / f"{stem0}_{shard}of4_meta.npz")
        n, first = len(meta["paths"]), len(paths)
        paths += [str(p) for p in meta["paths"]]
        for r in range(rounds + 1):
            stem = f"{stem0}_r{r}_{shard}of4" if r else f"{stem0}_{shard}of4"
            if r and [str(p) for p in np.load(CACHE / f"{stem}_meta.npz")["paths"]] != paths[first:]:
                raise RuntimeError(f"{stem}: faces differ from round 0")
            per_face = len(KINDS) - (1 if r else 0)
            feats.append(np.load(CACHE / f"{stem}.npy", mmap_mode="r"))  # copied once, by the concatenation
            faces.append(np.repeat(np.arange(first, first + n), per_face))
            kinds.append(np.tile(np.arange(len(KINDS) - per_face, len(KINDS)), n))
    names = sorted({ident[p] for p in paths})
    ids = np.array([names.index(ident[p]) for p in paths])
    return np.concatenate(feats), np.concatenate(faces), np.concatenate(kinds), ids


def cmd_train(args: argparse.Namespace) -> None:
    import torch
    import torch.nn.functional as F

    from periface.embed.torch_sface import load_sface_torch

    torch.manual_seed(SEED)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(SEED)
    net = load_sface_torch().eval()
    trunk_x, face_of, kind_of, ids = _load_train(args.rounds, STAGE_CUT[args.stages])
    trunk_x = torch.from_numpy(trunk_x)
    plain_rows = torch.from_numpy(np.flatnonzero(kind_of == 0))  # one per face, in face order
    assert np.array_equal(face_of[plain_rows.numpy()], np.arange(len(ids)))
    z14_path = CACHE / ((f"z14_upper{args.upper_rows}" if args.upper_rows else "z14")
                        + (f"_r{args.rounds}" if args.rounds else "") + ".npy")

    def conv14(x):
        return torch.cat([net.units["conv_14"](net.units["conv_14_dw"](x[i : i + 256].float())).half()
                          for i in range(0, len(x), 256)])

    with torch.no_grad():
        # The teacher always sees the whole unmasked face; with --upper-rows the student sees only the top rows of
        # the 7x7 trunk map (eyes and forehead), the rest zeroed, as a periocular head would at run time.
        student_x = trunk_x
        if args.upper_rows:
            student_x = trunk_x.clone()
            student_x[:, :, args.upper_rows:, :] = 0
        if args.stages == "head":  # conv_14 frozen: its output is computed once and cached
            if z14_path.exists() and np.load(z14_path, mmap_mode="r").shape[0] == len(trunk_x):
                inputs = torch.from_numpy(np.load(z14_path))
            else:
                t0 = time.time()
                inputs = conv14(student_x)
                np.save(z14_path, inputs.numpy())
                print(f"conv_14 outputs cached, {time.time() - t0:.0f}s", flush=True)
            model = net.head
            teacher_inputs = conv14(trunk_x[plain_rows]) if args.upper_rows else inputs[plain_rows]
        else:
            inputs = student_x
            model = torch.nn.Sequential(*[net.units[u] for u in TRAINED_UNITS[args.stages]], net.head)
            teacher_inputs = trunk_x[plain_rows]
        teacher = torch.cat([F.normalize(model(teacher_inputs[i : i + 256].float()), dim=1)
                             for i in range(0, len(teacher_inputs), 256)])
    val_face = np.array([stable_seed(str(i)) % 20 == 0 for i in ids])  # ~5% of identities held out
    train_idx = np.flatnonzero(~val_face[face_of])
    val_idx = np.flatnonzero(val_face[face_of])
    ids_t = torch.from_numpy(ids)
    face_t = torch.from_numpy(face_of)
    model.eval()  # BatchNorm keeps the teacher's statistics; its affine parameters still learn
    params = [p for p in model.parameters() if p.requires_grad]
    start = [p.detach().clone() for p in params]
    opt = torch.optim.Adam(params, lr=args.lr)
    steps = args.epochs * (len(train_idx) // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.1)

    def evaluate() -> dict[str, float]:
        with torch.no_grad():
            s = torch.cat([F.normalize(model(inputs[val_idx[i : i + 512]].float()), dim=1)
                           for i in range(0, len(val_idx), 512)])
        t = teacher[face_t[val_idx]]
        cos = (s * t).sum(1).numpy()
        k = kind_of[val_idx]
        sims = (s @ teacher[np.unique(face_of[val_idx])].T).numpy()  # rank of the true face among held-out faces
        truth = np.searchsorted(np.unique(face_of[val_idx]), face_of[val_idx])
        rank1 = float(np.mean(sims.argmax(1) == truth))
        return {**{f"cos_{KINDS[j]}": float(cos[k == j].mean()) for j in range(len(KINDS))}, "val_rank1": rank1}

    print("before", json.dumps(evaluate()), flush=True)
    t0 = time.time()
    step = 0
    for epoch in range(args.epochs):
        order = rng.permutation(train_idx)
        for b in range(len(train_idx) // args.batch):
            idx = torch.from_numpy(order[b * args.batch : (b + 1) * args.batch])
            s = F.normalize(model(inputs[idx].float()), dim=1)
            t = teacher[face_t[idx]]
            w = torch.from_numpy(np.where(kind_of[idx.numpy()] == 0, args.plain_weight, 1.0)).float()
            distil = (w * (1 - (s * t).sum(1))).sum() / w.sum()
            logits = s @ t.T / args.tau
            same_face = face_t[idx][:, None] == face_t[idx][None, :]
            other_same_id = (ids_t[face_t[idx]][:, None] == ids_t[face_t[idx]][None, :]) & ~same_face
            logits = logits.masked_fill(other_same_id, float("-inf"))
            apart = (torch.logsumexp(logits, 1) - torch.logsumexp(logits.masked_fill(~same_face, float("-inf")), 1)).mean()
            drift = sum(((p - p0) ** 2).sum() for p, p0 in zip(params, start))
            loss = distil + args.apart * apart + args.drift * drift
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            if step % 20 == 0:
                print(f"epoch {epoch} step {step}/{steps} distil {distil.item():.4f} apart {apart.item():.3f} "
                      f"drift {drift.item():.3g} {time.time() - t0:.0f}s", flush=True)
        print(f"epoch {epoch}", json.dumps(evaluate()), flush=True)
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    torch.save({"stages": args.stages, "state": state, "args": vars(args), "seed": SEED,
                "train_list_sha256": hashlib.sha256(TRAIN_LIST.read_bytes()).hexdigest()}, CACHE / f"head_{args.tag}.pt")
    print(f"saved {CACHE / f'head_{args.tag}.pt'}")


# --------------------------------------------------------------------------------------------------------- export
def _bn(prefix: str, bn, inp: str, out: str, nodes: list, inits: list) -> None:
    from onnx import helper, numpy_helper

    for suffix, value in (("scale", bn.weight), ("bias", bn.bias), ("mean", bn.running_mean), ("var", bn.running_var)):
        inits.append(numpy_helper.from_array(value.detach().numpy().astype(np.float32), f"{prefix}_{suffix}"))
    nodes.append(helper.make_node("BatchNormalization", [inp] + [f"{prefix}_{s}" for s in ("scale", "bias", "mean", "var")],
                                  [out], name=prefix, epsilon=float(bn.eps)))


def _half(name: str, value: np.ndarray, nodes: list, inits: list) -> str:
    """A weight stored as float16 and cast back to float32 inside the graph (halves the file)."""
    from onnx import TensorProto, helper, numpy_helper

    inits.append(numpy_helper.from_array(value.astype(np.float16), name + "_fp16"))
    nodes.append(helper.make_node("Cast", [name + "_fp16"], [name], name=name + "_cast", to=TensorProto.FLOAT))
    return name


def export_head(ckpt: Path, out: Path):
    import onnx
    import torch
    from onnx import TensorProto, helper, numpy_helper

    from periface.embed.robust import OUTPUT
    from periface.embed.torch_sface import load_sface_torch

    saved = torch.load(ckpt, weights_only=False)
    net = load_sface_torch().eval()
    units = TRAINED_UNITS[saved["stages"]]
    if not units:
        net.head.load_state_dict(saved["state"])
        cut, shape = "conv_14_relu", [1024, 7, 7]
    else:
        torch.nn.Sequential(*[net.units[u] for u in units], net.head).load_state_dict(saved["state"])
        cut = f"{STAGE_CUT[saved['stages']]}_relu"
        shape = list(CUTS[cut.removesuffix("_relu")][1])
    nodes: list = []
    inits: list = []
    x = "head_in"
    for name in units:
        conv, bn, prelu = net.units[name]
        w = _half(f"r_{name}_w", conv.weight.detach().numpy(), nodes, inits)
        nodes.append(helper.make_node("Conv", [x, w], [f"r_{name}_conv"], name=f"r_{name}_conv",
                                      kernel_shape=list(conv.kernel_size), strides=list(conv.stride),
                                      pads=[conv.padding[0]] * 4, group=conv.groups))
        _bn(f"r_{name}_bn", bn, f"r_{name}_conv", f"r_{name}_bnout", nodes, inits)
        inits.append(numpy_helper.from_array(prelu.weight.detach().numpy().reshape(-1, 1, 1).astype(np.float32),
                                             f"r_{name}_slope"))
        nodes.append(helper.make_node("PRelu", [f"r_{name}_bnout", f"r_{name}_slope"], [f"r_{name}_out"], name=f"r_{name}_prelu"))
        x = f"r_{name}_out"
    head = net.head
    _bn("r_bn1", head.bn1, x, "r_bn1_out", nodes, inits)
    nodes.append(helper.make_node("Flatten", ["r_bn1_out"], ["r_flat"], name="r_flatten", axis=1))
    w = _half("r_fc_w", head.pre_fc1.weight.detach().numpy(), nodes, inits)
    inits.append(numpy_helper.from_array(head.pre_fc1.bias.detach().numpy().astype(np.float32), "r_fc_b"))
    nodes.append(helper.make_node("Gemm", ["r_flat", w, "r_fc_b"], ["r_fc"], name="r_pre_fc1", transB=1))
    _bn("r_fc1", head.fc1, "r_fc", OUTPUT, nodes, inits)
    graph = helper.make_graph(nodes, "sface_masked_head",
                              [helper.make_tensor_value_info("head_in", TensorProto.FLOAT, ["N", *shape])],
                              [helper.make_tensor_value_info(OUTPUT, TensorProto.FLOAT, ["N", 128])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], producer_name="periface")
    helper.set_model_props(model, {"trunk_output": cut, "train_list_sha256": saved["train_list_sha256"],
                                   "seed": str(saved["seed"]), "args": json.dumps(saved["args"])})
    onnx.checker.check_model(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(out))
    return model


def cmd_export(args: argparse.Namespace) -> None:
    from periface.embed.robust import HEAD_FILE

    out = DATA / HEAD_FILE if args.ship else CACHE / f"head_{args.tag}.onnx"
    export_head(CACHE / f"head_{args.tag}.pt", out)
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    if args.ship:
        (DATA / "SHA256SUMS").write_text(f"{digest}  {HEAD_FILE}\n")
    print(json.dumps({"file": str(out), "bytes": out.stat().st_size, "sha256": digest}))


# ------------------------------------------------------------------------------------------------------- evaluate
def _eval_set(which: str) -> dict[str, np.ndarray] | None:
    parts = [np.load(f) for f in sorted(CACHE.glob(f"eval_{which}_*of*.npz"))]
    if not parts:
        print(f"no eval-render --set {which} yet: skipped")
        return None
    return {k: np.concatenate([p[k] for p in parts]) for k in ("keys", "masked", "found", "feats", "crops")}


DEEP_CUTS = {f"{c}_relu" for c in CUTS if c != CUT}  # heads cut before conv_13: run end to end on the crops


def _head_cut(head: Path) -> str:
    import onnx

    return {p.key: p.value for p in onnx.load(str(head)).metadata_props}["trunk_output"]


class ShippedOnCrops:
    """The shipped embedder (or ``head`` joined to the trunk) end to end on the cached aligned crops, mirror
    averaging included when ``flip``."""

    def __init__(self, flip: bool, head: Path | None = None) -> None:
        from periface.embed.robust import RobustSFaceEmbedder

        digest = hashlib.sha256(head.read_bytes()).hexdigest() if head else None
        self.embedder = RobustSFaceEmbedder(head_path=head, sha256=digest, threads=1, flip=flip)

    def __call__(self, data: dict) -> np.ndarray:
        out = np.full((len(data["crops"]), 128), np.nan, np.float32)
        idx = np.flatnonzero(data["found"])
        for i in range(0, len(idx), 64):
            out[idx[i : i + 64]] = self.embedder.embed_aligned(data["crops"][idx[i : i + 64]])
        return out


class HeadOnFeatures:
    """Embeddings from cached conv_13 trunk outputs, by onnxruntime: the original SFace tail, or original conv_14 +
    a fine-tuned head file. Same numbers as the joined graph of ``RobustSFaceEmbedder`` (checked in ``evaluate``)."""

    def __init__(self, head: Path | None) -> None:
        import onnx
        from onnx.utils import Extractor

        from periface.embed.robust import free_batch, joined_model, session, sface_trunk

        base = sface_trunk("fc1")
        if head is None:
            self.steps = [(session(free_batch(Extractor(base).extract_model(["conv_13_relu"], ["fc1"])), 1), "fc1")]
        else:
            cut = {p.key: p.value for p in onnx.load(str(head)).metadata_props}["trunk_output"]
            joined = joined_model(head)
            self.steps = [(session(free_batch(Extractor(joined).extract_model(["conv_13_relu"], ["embedding"])), 1),
                           "embedding")]
            self.cut = cut

    def __call__(self, data: dict) -> np.ndarray:
        feats, found = data["feats"], data["found"]
        out = np.full((len(feats), 128), np.nan, np.float32)
        sess, name = self.steps[0]
        idx = np.flatnonzero(found)
        for i in range(0, len(idx), 64):
            j = idx[i : i + 64]
            y = sess.run([name], {"conv_13_relu": feats[j].astype(np.float32)})[0]
            out[j] = y / np.linalg.norm(y, axis=1, keepdims=True)
        return out


def _impostors(x: np.ndarray, people: np.ndarray) -> np.ndarray:
    ok = np.isfinite(x).all(axis=1)
    x, people = x[ok], people[ok]
    sims = x @ x.T
    iu = np.triu_indices(len(x), 1)
    return sims[iu][people[iu[0]] != people[iu[1]]]


def _by_key(data: dict, x: np.ndarray) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Embeddings of an eval set by image key: (unmasked, masked)."""
    plain = {k: x[i] for i, k in enumerate(data["keys"]) if not data["masked"][i]}
    masked = {k: x[i] for i, k in enumerate(data["keys"]) if data["masked"][i]}
    return plain, masked


def _identification(pairs: list, plain: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, list[str], np.ndarray]:
    """One unmasked gallery photo per View-2 person (the first image of their first matched pair, else their first
    image) and the probes (second images of matched pairs that are not the gallery photo): (gallery people, gallery
    embeddings, probe keys, probe people)."""
    gallery: dict[str, str] = {}
    for p in pairs:
        if p.same:
            gallery.setdefault(p.a.split("/")[0], p.a)
    for k in sorted(plain):
        gallery.setdefault(k.split("/")[0], k)
    g_people = np.array(sorted(gallery))
    g = np.stack([plain[gallery[n]] for n in g_people])
    probes = sorted({p.b for p in pairs if p.same and p.b != gallery[p.b.split("/")[0]]})
    return g_people, g, probes, np.array([p.split("/")[0] for p in probes])


def _dev_metrics(emb: HeadOnFeatures, dev: dict) -> dict:
    """Masked-probe verification on View-1's 3,200 pairs (people never trained on): for choosing among variants."""
    from periface.evaluation.metrics import eer, kfold_accuracy, tar_at_far

    pairs = _dev_pairs()
    same = np.array([p.same for p in pairs])
    plain, masked = _by_key(dev, emb(dev))
    out = {}
    for variant, second in (("unmasked", plain), ("masked_probe", masked)):
        s = np.nan_to_num(np.array([float(plain[p.a] @ second[p.b]) for p in pairs]), nan=-1.0)
        acc, _ = kfold_accuracy(s, same, np.arange(len(pairs)) % 10)
        out[variant] = {"accuracy": acc, "tar_at_far_1e-2": tar_at_far(s, same, 1e-2)[0], "eer": eer(s, same)}
    return out


def _metrics(name: str, emb: HeadOnFeatures, v2: dict, v1: dict, real: dict) -> dict:
    from periface.evaluation.metrics import cmc, eer, kfold_accuracy, tar_at_far
    from periface.match import Calibration

    ds = require_datasets()
    pairs = read_pairs(ds / "lfw" / "pairs.txt")
    same, folds = pair_labels(pairs)
    plain, masked = _by_key(v2, emb(v2))
    report: dict = {}
    for variant, second in (("unmasked", plain), ("masked_probe", masked)):
        s = np.array([float(plain[p.a] @ second[p.b]) for p in pairs])
        acc, std = kfold_accuracy(s, same, folds)
        report[variant] = {"accuracy": acc, "accuracy_std": std, "tar_at_far_1e-3": tar_at_far(s, same, 1e-3)[0],
                           "tar_at_far_1e-2": tar_at_far(s, same, 1e-2)[0], "eer": eer(s, same),
                           "pairs_with_missing_face": int(np.sum(~np.isfinite(s)))}
    # identification: masked probes (and, for reference, unmasked) against one unmasked photo per person
    g_people, g, probes, p_people = _identification(pairs, plain)
    for variant, src in (("unmasked", plain), ("masked_probe", masked)):
        q = np.stack([src[p] for p in probes])
        curve = cmc(np.nan_to_num(q, nan=np.nan) @ np.nan_to_num(g, nan=0.0).T, g_people, p_people, 10)
        report[variant] |= {"rank1": float(curve[0]), "rank10": float(curve[9]), "gallery": len(g_people),
                            "probes": len(probes)}
    if v1 is None or real is None:
        return report, None
    # calibration on View-1 (pairsDevTrain) impostors, unmasked, as scripts/calibrate.py does
    v1_pairs = read_pairs(ds / "lfw" / "pairsDevTrain.txt")
    v1_images = sorted({p.a for p in v1_pairs} | {p.b for p in v1_pairs})
    x1 = emb(v1)
    lookup = {k: x1[i] for i, k in enumerate(v1["keys"])} | plain
    xv1 = np.stack([lookup[k] for k in v1_images])
    cal = Calibration.from_scores(name, _impostors(xv1, np.array([k.split("/")[0] for k in v1_images])),
                                  "LFW View-1 pairsDevTrain.txt: all different-person pairs among its images")
    thr = cal.threshold(1e-3)
    report["calibration"] = {"threshold_far_1e-3": thr, "threshold_far_1e-2": cal.threshold(1e-2),
                             "images_without_face": int((~np.isfinite(xv1).all(1)).sum())}
    # real crops: no identities, so look at how masked strangers behave at the shipped FAR 1e-3 threshold
    xr = emb(real)
    group = np.array([k.split("/")[0] for k in real["keys"]])
    g2 = np.stack([v for v in plain.values() if np.isfinite(v).all()])
    real_report: dict = {}
    for sub in ("with_mask", "synthetic_correct", "without_mask"):
        xs = xr[(group == sub) & real["found"]]
        sims = xs @ xs.T
        iu = np.triu_indices(len(xs), 1)
        cross = xs @ g2.T  # against every unmasked View-2 photo: (almost surely) other people
        real_report[sub] = {
            "crops": int(np.sum(group == sub)),
            "mean_pairwise_similarity": float(sims[iu].mean()),
            "far_among_themselves_at_far1e-3_threshold": float(np.mean(sims[iu] >= thr)),
            "far_vs_lfw_unmasked_at_far1e-3_threshold": float(np.mean(cross >= thr)),
            "mean_similarity_vs_lfw_unmasked": float(cross.mean()),
        }
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score

    a = xr[(group == "with_mask") & real["found"]]
    b = xr[(group == "without_mask") & real["found"]]
    xy = np.concatenate([a, b])
    lab = np.r_[np.ones(len(a)), np.zeros(len(b))]
    real_report["mask_state_linear_probe_accuracy"] = float(
        cross_val_score(LogisticRegression(C=1.0, max_iter=2000), xy, lab, cv=5).mean())
    report["real_crops"] = real_report
    return report, cal


def cmd_evaluate(args: argparse.Namespace) -> None:
    from periface.embed.robust import HEAD_FILE

    v2, v1, real, dev = _eval_set("view2"), _eval_set("view1"), _eval_set("real"), _eval_set("dev")
    out: dict = {}
    suffix = "-mirror" * args.mirror
    heads = [("sface", None)] * args.baseline + [(f"sface-robust-{t}{suffix}", CACHE / f"head_{t}.onnx") for t in args.tags]
    if args.ship:
        heads.append(("sface-robust", DATA / HEAD_FILE))
    if args.flip:
        heads.append(("sface-robust-flip", None))  # the shipped head with mirror averaging, run on the crops
    for name, head in heads:
        t0 = time.time()
        if name == "sface-robust-flip":
            emb = ShippedOnCrops(flip=True)
        elif head is not None and (args.mirror or _head_cut(head) in DEEP_CUTS):
            emb = ShippedOnCrops(flip=args.mirror, head=head)  # end to end on the crops
        else:
            emb = HeadOnFeatures(head)
        out[name], _ = _metrics(name, emb, v2, v1, real)
        if dev is not None:
            out[name]["dev_view1"] = _dev_metrics(emb, dev)
        print(name, json.dumps(out[name], indent=1), f"{time.time() - t0:.0f}s", flush=True)
    if args.ship and _head_cut(DATA / HEAD_FILE) not in DEEP_CUTS:  # (that cut was evaluated end to end)
        # the shipped graph run end to end (trunk + head, batched) must give what the cached path gave
        from periface.embed.robust import RobustSFaceEmbedder

        crops = np.concatenate([np.load(f)["crops"][:40] for f in sorted(CACHE.glob("eval_view2_*of*.npz"))])
        feats = np.concatenate([np.load(f)["feats"][:40] for f in sorted(CACHE.glob("eval_view2_*of*.npz"))])
        full = RobustSFaceEmbedder(threads=1, flip=False).embed_aligned(crops)
        cached = HeadOnFeatures(DATA / HEAD_FILE)({"feats": feats, "found": np.ones(len(feats), bool)})
        out["end_to_end_vs_cached_min_cos"] = float((full * cached).sum(1).min())
        print("end-to-end vs cached features, min cosine:", out["end_to_end_vs_cached_min_cos"])
    tag = "_".join(["sface"] * args.baseline + args.tags + ["mirror"] * args.mirror + ["ship"] * args.ship
                   + ["flip"] * args.flip)
    (CACHE / f"evaluate_{tag}.json").write_text(json.dumps(out, indent=1))
    if args.ship:
        (DATA / "report.json").write_text(json.dumps(out, indent=1) + "\n")


# ---------------------------------------------------------------------------------------------------------- norm
def cmd_norm(args: argparse.Namespace) -> None:
    """Score normalisation as a lead, on cached crops: AS-norm of dev masked-probe scores, and gallery-side
    normalisation of View-2 masked identification (the only side that can change a search's ranking)."""
    from periface.evaluation.metrics import cmc, eer, kfold_accuracy, tar_at_far

    from periface.embed.robust import HEAD_FILE

    head = {"sface": None, "ship": DATA / HEAD_FILE}.get(args.tag, CACHE / f"head_{args.tag}.onnx")
    if head is not None and _head_cut(head) in DEEP_CUTS:
        sys.exit(f"norm reads the conv_13 feature caches: {head} starts at {_head_cut(head)}")
    emb = HeadOnFeatures(head)
    cohort = []  # unmasked training faces: LFW people in no pair list and real without_mask crops (not casia: 14 people)
    for shard in range(4):
        meta = np.load(CACHE / f"feat_{shard}of4_meta.npz")
        rows = np.flatnonzero([not str(p).startswith("casia") for p in meta["paths"]]) * len(KINDS)
        feats = np.asarray(np.load(CACHE / f"feat_{shard}of4.npy", mmap_mode="r")[rows])
        cohort.append(emb({"feats": feats, "found": np.ones(len(rows), bool)}))
    cohort = np.concatenate(cohort)

    def top_stats(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        top = np.sort(np.nan_to_num(x) @ cohort.T, 1)[:, -k:]
        return top.mean(1), top.std(1)

    out: dict = {"cohort_faces": len(cohort), "dev_masked_probe": {}, "view2_masked_identification": {}}
    dev = _eval_set("dev")
    plain, masked = _by_key(dev, emb(dev))
    pairs = _dev_pairs()
    same = np.array([p.same for p in pairs])
    a = np.stack([plain[p.a] for p in pairs])
    b = np.nan_to_num(np.stack([masked[p.b] for p in pairs]))
    raw = (a * b).sum(1)

    def summary(scores: np.ndarray) -> dict:
        scores = np.nan_to_num(scores, nan=-9.0)
        return {"accuracy": kfold_accuracy(scores, same, np.arange(len(pairs)) % 10)[0],
                "tar_at_far_1e-2": tar_at_far(scores, same, 1e-2)[0],
                "tar_at_far_1e-3": tar_at_far(scores, same, 1e-3)[0], "eer": eer(scores, same)}

    out["dev_masked_probe"]["raw"] = summary(raw)
    for k in (50, 100, 300):
        (ma, sa), (mb, sb) = top_stats(a, k), top_stats(b, k)
        with np.errstate(invalid="ignore", divide="ignore"):
            out["dev_masked_probe"][f"as-norm top-{k}"] = summary(0.5 * ((raw - ma) / sa + (raw - mb) / sb))
    v2 = _eval_set("view2")
    plain, masked = _by_key(v2, emb(v2))
    g_people, g, probes, p_people = _identification(read_pairs(require_datasets() / "lfw" / "pairs.txt"), plain)
    scores = np.nan_to_num(np.stack([masked[p] for p in probes])) @ g.T
    rows = {"raw": scores}
    for k in (50, 100, 300):
        mg, sg = top_stats(g, k)
        rows[f"gallery z-norm top-{k}"] = (scores - mg[None]) / sg[None]
        rows[f"gallery mean-only top-{k}"] = scores - mg[None]
    for name, s in rows.items():
        curve = cmc(s, g_people, p_people, 10)
        out["view2_masked_identification"][name] = {"rank1": float(curve[0]), "rank5": float(curve[4]),
                                                    "rank10": float(curve[9])}
    print(json.dumps(out, indent=1))
    (CACHE / f"norm_{args.tag}.json").write_text(json.dumps(out, indent=1))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list")
    r = sub.add_parser("render")
    r.add_argument("--shard", type=int, default=0)
    r.add_argument("--of", type=int, default=1)
    r.add_argument("--round", type=int, default=0, help="0: the base cache; R > 0: another draw of masks (new seeds)")
    f = sub.add_parser("features")
    f.add_argument("--shard", type=int, default=0)
    f.add_argument("--of", type=int, default=4)
    f.add_argument("--round", type=int, default=0, help="extra rounds: more masked samples of the same faces")
    f.add_argument("--cut", choices=list(CUTS), default=CUT, help="the trunk unit whose output is cached")
    e = sub.add_parser("eval-render")
    e.add_argument("--set", choices=["view2", "view1", "dev", "real"], required=True)
    e.add_argument("--shard", type=int, default=0)
    e.add_argument("--of", type=int, default=1)
    t = sub.add_parser("train")
    t.add_argument("--stages", choices=list(TRAINED_UNITS), default="head",
                   help="head: bn1+pre_fc1+fc1; conv14: + conv_14; conv13: + conv_13 (needs features --cut conv_12); "
                        "conv12: + conv_12 (needs features --cut conv_11)")
    t.add_argument("--epochs", type=int, default=6)
    t.add_argument("--batch", type=int, default=256)
    t.add_argument("--lr", type=float, default=3e-5)
    t.add_argument("--tau", type=float, default=0.1)
    t.add_argument("--apart", type=float, default=0.1, help="weight of the keep-people-apart (InfoNCE) term")
    t.add_argument("--plain-weight", type=float, default=1.0, help="weight of unmasked samples in the distillation")
    t.add_argument("--drift", type=float, default=0.0, help="L2 pull toward the original weights")
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--rounds", type=int, default=0, help="also train on the extra render rounds 1..N")
    t.add_argument("--tag", default="v1")
    t.add_argument("--upper-rows", type=int, default=0,
                   help="experiment: the student sees only the top N of the 7 trunk rows (eyes, forehead)")
    x = sub.add_parser("export")
    x.add_argument("--tag", default="v1")
    x.add_argument("--ship", action="store_true", help="write src/periface/data/robust/ and its SHA256SUMS")
    v = sub.add_parser("evaluate")
    v.add_argument("--tags", nargs="*", default=[])
    v.add_argument("--ship", action="store_true", help="also the shipped file; writes its calibration")
    v.add_argument("--baseline", action="store_true", help="also the original SFace")
    v.add_argument("--flip", action="store_true", help="also the shipped embedder with mirror averaging (slower: runs on crops)")
    v.add_argument("--mirror", action="store_true",
                   help="the --tags heads with mirror averaging, end to end on the crops")
    n = sub.add_parser("norm")
    n.add_argument("--tag", default="ship", help="ship (the shipped head), sface, or a head in .cache/robust (head_TAG.onnx)")
    args = ap.parse_args()
    {"evaluate": cmd_evaluate, "train": cmd_train, "export": cmd_export, "eval-render": cmd_eval_render, "list": cmd_list, "render": cmd_render, "features": cmd_features, "norm": cmd_norm}[args.cmd](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
