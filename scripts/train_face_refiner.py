"""Train the crowd candidate refiner and refit CrowdFinder's fusion with it (mask-scenes TRAIN split only).

    OMP_NUM_THREADS=1 python scripts/train_face_refiner.py --workers 2     # ~50 min on 2 CPU cores; torch is a training extra

Run after ``benchmarks/detect_scenes.py --fit`` (which chooses the detector passes and their box corrections and
writes a configuration without a refiner); this script keeps those passes and:

1. clusters every pass's raw boxes into candidates (``periface.detect.crowd.cluster``) on all 427 scenes;
2. trains the refiner CNN (``periface.detect.refine``; face / not a face, plus box deltas onto the annotated box) on
   the candidates of the train split, each drawn with a jittered box, and on jittered annotated boxes;
3. repeats 2. on four folds of the train images (by file-name hash) to get out-of-fold logits and boxes for every
   train candidate, so that the fusion model learns how much to trust the refiner on images it never saw;
   ``--members M`` trains M networks (other seeds) per fold and for the final model;
4. for each ensemble size 1..M (the mean of the first k members' outputs) and each way of running it (``VARIANTS``:
   averaged with the mirror image or not, one or two looks), refits the fusion logistic model on the out-of-fold
   features, picks the threshold by the same rule as before (the lowest probability keeping >= 95% precision on
   boxes >= 32 px, train split) and keeps the one with the best out-of-fold recall of masked faces >= 32 px
   (ties: the simpler one, fewer members first). Ways that cost more at run time (mirror, two looks) are scored
   and printed but only chosen with ``--allow-costly``: in the fourteenth session mirror + ``contained`` 0.6 won by
   one face out of fold and, judged on held-out, gave one false box fewer for four more small false boxes and a
   sixth more time (docs/crowds.md), so the default build keeps the shipped single look;
5. writes ``data/face_refiner.onnx`` (final model, all train images; an ensemble is one graph that outputs the
   members' mean) and ``data/crowd_calibration.json``.
The held-out test split is judged by ``python benchmarks/detect_scenes.py``.

``--context C`` trains and runs the refiner on crops C times the box (shipped: 1.6; 2.0 was tried in the fourth
session and was worse out of fold); ``--compare-only`` stops after step 4 and writes nothing; ``--skip-costly``
scores only the single plain look there. ``--width W`` scales the CNN's channels (2 was tried in the twentieth
session and was worse out of fold, docs/crowds.md).

On a GPU machine (no datasets or detectors there): ``--pack FILE`` writes the scenes' files, boxes and candidates
(8.6 MB); there ``--train-only --data FILE --device cuda --workers N`` trains the fold networks and final members into
``.cache/refiner_nets/`` (each saved as soon as it is trained); brought back, the usual commands find them under the
same key. Without ``--device`` the same runs on the CPU.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from _parallel import add_machine_arguments, run_jobs, save_network, training_environment  # noqa: E402

from periface.detect.base import iou_matrix  # noqa: E402
from periface.detect.crowd import CALIBRATION_FILE, CrowdFinder, Fusion, candidate_features, cluster, select_faces  # noqa: E402
from periface.detect.refine import CONTEXT, INPUT_PX, MODEL_FILE, box_deltas, refine_boxes  # noqa: E402
from periface.evaluation.datasets import require_datasets  # noqa: E402
from periface.evaluation.detection import DetectionTally, lowest_threshold_keeping_precision, match  # noqa: E402
from periface.evaluation.voc import read_scenes, split_of  # noqa: E402
from periface.image import cnn_input, context_crop, load_image  # noqa: E402
from periface.models import file_sha256, record_sha256  # noqa: E402

SEED = 0
FOLDS = 4
SCENE_YUNET_FOLDS = Path(".cache/yunet_scenes")  # scripts/finetune_yunet.py's networks, one per fold and the final
EPOCHS, STEPS_PER_EPOCH, BATCH = 18, 150, 64
# Ways to run the refiner, simplest first; the fit keeps the best on the out-of-fold train candidates.
VARIANTS = [(False, 1), (True, 1), (False, 2), (True, 2)]  # (mirror, iterations)
POSITIVE_IOU, NEGATIVE_IOU, REGRESS_IOU = 0.4, 0.25, 0.3
TARGET_PRECISION = 0.95
# select_faces(contained=...): 0 keeps boxes inside larger faces; the others drop a box that much inside one.
CONTAINED = (0.0, 0.6, 0.75, 0.9)
NET_CACHE = Path(".cache") / "refiner_nets"
WIDTH = 1.0


def build_net(width: float = 1.0):
    """``width`` scales every layer's channels (1: 16/32/64/96 and 128 hidden units)."""
    import torch.nn as nn

    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    c1, c2, c3, c4, hidden = (round(c * width) for c in (16, 32, 64, 96, 128))
    return nn.Sequential(
        *block(3, c1), nn.MaxPool2d(2),  # 24
        *block(c1, c2), nn.MaxPool2d(2),  # 12
        *block(c2, c3), nn.MaxPool2d(2),  # 6
        *block(c3, c4), nn.MaxPool2d(2),  # 3: keep the layout, the box deltas need to know where the face sits
        nn.Flatten(), nn.Dropout(0.2), nn.Linear(c4 * 9, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, 5),
    )


def scene_candidates(scenes, finder: CrowdFinder) -> list:
    """Per scene: (rgb, clustered candidates). A pass of the YuNet fine-tuned on these scenes runs, on a train photo,
    the network of the fold that left that photo out (``scripts/finetune_yunet.py``), so that the refiner and the
    fusion see its boxes and scores as they are on photos it never saw, not as on the photos it learnt."""
    out = []
    t0 = time.time()
    fold_finders = {}
    for s in scenes:
        rgb = load_image(s.image)
        run = finder
        if split_of(s.image.name) == "train" and any(p.detector == "yunet_scenes" for p in finder.passes):
            fold = fold_of(s.image.name)
            if fold not in fold_finders:
                fold_finders[fold] = fold_finder(finder, fold)
            run = fold_finders[fold]
        out.append((rgb, cluster(run.run_passes(rgb), rgb.shape[:2], finder.cluster_iou)))
    print(f"candidates of {len(scenes)} scenes: {sum(len(c) for _, c in out)}, {time.time() - t0:.0f} s", flush=True)
    return out


def fold_finder(finder: CrowdFinder, fold: int) -> CrowdFinder:
    """``finder`` with the scene-trained YuNet of the network that left out ``fold``."""
    path = SCENE_YUNET_FOLDS / f"yunet_scenes_{fold}.onnx"
    if not path.exists():
        raise SystemExit(f"{path} is missing: run scripts/finetune_yunet.py first")
    run = CrowdFinder(finder.passes, finder.fusion, refiner=None)
    run.detector("yunet_scenes").path = path  # this thread's detector, before it loads a network
    return run


def sample_pool(scenes, cands, images: list[int]) -> list[tuple[int, np.ndarray, float]]:
    """(image, box, jitter) for every candidate and every annotated face of ``images``; annotated boxes are
    jittered more, so that the box deltas learn corrections larger than the detectors' usual error."""
    pool = []
    for i in images:
        pool += [(i, box, 0.04) for box in cands[i][1].boxes]
        pool += [(i, np.asarray(g, np.float32), 0.12) for g in scenes[i].boxes if min(g[2] - g[0], g[3] - g[1]) >= 6]
    return pool


def draw_batch(pool, scenes, cands, rng: np.random.Generator, size: int):
    """Crops of jittered boxes with their face label (1/0/-1 = ignore) and box-delta targets (NaN = none)."""
    x = np.empty((size, INPUT_PX, INPUT_PX, 3), np.uint8)
    label = np.full(size, -1.0, np.float32)
    target = np.full((size, 4), np.nan, np.float32)
    for k, j in enumerate(rng.integers(0, len(pool), size)):
        i, box, spread = pool[j]
        side = max(box[2] - box[0], box[3] - box[1])
        box = (box + rng.normal(0, spread, 4) * side).astype(np.float32)
        if min(box[2] - box[0], box[3] - box[1]) < 3:
            box = pool[j][1]
        rgb = cands[i][0]
        crop = context_crop(rgb, box, _SHARED["context"] * rng.uniform(0.95, 1.05), INPUT_PX)
        if rng.random() < 0.5:  # mirror: the x deltas swap and change sign
            crop = crop[:, ::-1]
            mirrored = True
        else:
            mirrored = False
        f = crop.astype(np.float32) * rng.uniform(0.75, 1.25) + rng.uniform(-20, 20)
        x[k] = np.clip(f, 0, 255).astype(np.uint8)
        gt = scenes[i].boxes
        if len(gt):
            iou = iou_matrix(box[None], np.asarray(gt, np.float32))[0]
            g = int(np.argmax(iou))
            label[k] = 1.0 if iou[g] >= POSITIVE_IOU else (0.0 if iou[g] < NEGATIVE_IOU else -1.0)
            if iou[g] >= REGRESS_IOU:
                d = box_deltas(box[None], np.asarray(gt[g], np.float32)[None])[0]
                target[k] = np.array([-d[2], d[1], -d[0], d[3]]) if mirrored else d
        else:
            label[k] = 0.0
    return x, label, target


def train_net(pool, scenes, cands, seed: int):
    """One network; ``_SHARED`` says its width and the device its arithmetic runs on ("cuda" on a GPU machine: the
    crops are drawn on the CPU either way, with the same random stream). Returned on the CPU."""
    import torch

    device = _SHARED["device"]
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    net = build_net(_SHARED["width"]).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=EPOCHS * STEPS_PER_EPOCH)
    bce = torch.nn.BCEWithLogitsLoss(reduction="none")
    for epoch in range(EPOCHS):
        net.train()
        t0, total = time.time(), torch.zeros(())
        for _ in range(STEPS_PER_EPOCH):
            x, label, target = draw_batch(pool, scenes, cands, rng, BATCH)
            out = net(torch.from_numpy(cnn_input(x)).to(device))
            lab, tgt = torch.from_numpy(label).to(device), torch.from_numpy(target).to(device)
            has_label, has_box = lab >= 0, ~torch.isnan(tgt[:, 0])
            loss = (bce(out[:, 0], lab.clamp(min=0)) * has_label).sum() / has_label.sum().clamp(min=1)
            if has_box.any():
                loss = loss + 5.0 * torch.nn.functional.smooth_l1_loss(out[has_box, 1:], tgt[has_box], beta=0.05)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total = total.to(device) + loss.detach()  # summed where it is computed: no GPU wait per step
        print(f"  seed {seed} epoch {epoch + 1}/{EPOCHS}: loss {float(total) / STEPS_PER_EPOCH:.3f}, "
              f"{time.time() - t0:.0f} s", flush=True)
    return net.cpu().eval()


def torch_outputs(net):
    """``outputs`` for ``refine_boxes``: crops -> (K, 5), from a torch module."""
    import torch

    def outputs(crops: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(torch.from_numpy(cnn_input(crops))).numpy()

    return outputs


_SHARED: dict = {}  # what forked fold workers read: scenes, candidates, train images, context, width, device


def member_seed(member: int, fold: int | None) -> int:
    """Member 0 keeps the seeds of the single network shipped before ensembles (final 0, folds 1-4)."""
    return SEED + 10 * member + (0 if fold is None else 1 + fold)


def train_fold(job: tuple[int, int]) -> dict:
    fold, member = job
    scenes, cands, train = _SHARED["scenes"], _SHARED["cands"], _SHARED["train"]
    fit_images = [i for i in train if fold_of(scenes[i].image.name) != fold]
    print(f"fold {fold} member {member}: fit on {len(fit_images)} images", flush=True)
    return train_net(sample_pool(scenes, cands, fit_images), scenes, cands, member_seed(member, fold)).state_dict()


def train_final(member: int) -> dict:
    scenes, cands, train = _SHARED["scenes"], _SHARED["cands"], _SHARED["train"]
    return train_net(sample_pool(scenes, cands, train), scenes, cands, member_seed(member, None)).state_dict()


def mean_outputs(members: list):
    """``outputs`` of an ensemble: the mean of its members' (K, 5) outputs."""
    return lambda crops: np.mean([outputs(crops) for outputs in members], axis=0)


def ensemble_module(nets: list):
    """One module whose output is the mean of ``nets``' outputs (what ``mean_outputs`` computes), for ONNX."""
    import torch

    class RefinerEnsemble(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.members = torch.nn.ModuleList(nets)

        def forward(self, image):
            return torch.stack([net(image) for net in self.members]).mean(dim=0)

    return RefinerEnsemble().eval()


def training_key(finder: CrowdFinder, context: float, width: float) -> str:
    """What a trained network depends on besides its seed: the passes, the crop context, the width and the training
    code. (A GPU machine trains from a pack of the same images and candidates, ``--pack``: the same key.)"""
    import inspect

    code = "".join(inspect.getsource(f) for f in (build_net, sample_pool, draw_batch, train_net, scene_candidates))
    spec = json.dumps([[p.__dict__ for p in finder.passes], finder.cluster_iou, context, EPOCHS, STEPS_PER_EPOCH, BATCH,
                       POSITIVE_IOU, NEGATIVE_IOU, REGRESS_IOU, FOLDS, width], sort_keys=True, default=list)
    if any(p.detector == "yunet_scenes" for p in finder.passes):  # its fold networks make the train candidates
        spec += json.dumps([file_sha256(f) for f in sorted(SCENE_YUNET_FOLDS.glob("yunet_scenes_*.onnx"))])
    return hashlib.sha256((spec + code).encode()).hexdigest()[:12]


def _train_and_save(job: tuple) -> None:
    fn, arg, path = job
    save_network(fn(arg), path)


def net_path(fn, job, key: str) -> Path:
    return NET_CACHE / f"{key}-{fn.__name__}-{job if isinstance(job, int) else '-'.join(map(str, job))}.pt"


def train_missing(pairs: list[tuple[Any, Any]], workers: int, key: str) -> None:
    """Trains the (function, job) pairs not yet in ``.cache/refiner_nets/``, ``workers`` side by side."""
    NET_CACHE.mkdir(parents=True, exist_ok=True)
    run_jobs(_train_and_save, [(fn, job, net_path(fn, job, key)) for fn, job in pairs
                               if not net_path(fn, job, key).exists()], workers)


def cached_jobs(fn, jobs: list, workers: int, key: str) -> list:
    """``run_jobs`` whose trained states are kept in ``.cache/refiner_nets/``: a rerun (another selection rule,
    ``--compare-only``, more members) trains only the networks it does not have yet."""
    import torch

    train_missing([(fn, job) for job in jobs], workers, key)
    return [torch.load(net_path(fn, job, key)) for job in jobs]


def write_pack(scenes, cands, path: Path) -> None:
    """What training needs, for a GPU machine that has neither the datasets nor the detectors: each scene's file
    bytes (decoded there as here), annotated boxes and candidate boxes."""
    def flat(arrays):
        return np.concatenate([np.asarray(a, np.float32).reshape(-1, 4) for a in arrays]), np.cumsum([len(a) for a in arrays])

    images = [np.frombuffer(s.image.read_bytes(), np.uint8) for s in scenes]
    gt, gt_ends = flat([s.boxes for s in scenes])
    cb, cb_ends = flat([c.boxes for _, c in cands])
    np.savez(path, names=np.array([s.image.name for s in scenes]), images=np.concatenate(images),
             image_ends=np.cumsum([len(b) for b in images]), gt=gt, gt_ends=gt_ends, cands=cb, cand_ends=cb_ends)
    print(f"wrote {path}: {len(scenes)} scenes, {path.stat().st_size / 1e6:.1f} MB")


def read_pack(path: Path):
    """(scenes, candidates) from ``write_pack``'s file: scenes carry the file name and boxes (states unused by
    training), candidates their boxes alone."""
    from periface.detect.crowd import Candidates
    from periface.evaluation.voc import Scene

    pack = np.load(path)

    def split(flat, ends):
        return np.split(flat, ends[:-1])

    scenes, cands = [], []
    for name, data, gt, boxes in zip(pack["names"], split(pack["images"], pack["image_ends"]),
                                     split(pack["gt"], pack["gt_ends"]), split(pack["cands"], pack["cand_ends"])):
        rgb = load_image(data.tobytes(), name=str(name))
        scenes.append(Scene(Path(str(name)), gt, ["face"] * len(gt)))
        cands.append((rgb, Candidates(boxes, np.zeros((len(boxes), 5, 2), np.float32), np.zeros((len(boxes), 0)),
                                      rgb.shape[:2])))
    return scenes, cands


def load_net(state: dict):
    net = build_net(_SHARED["width"])
    net.load_state_dict(state)
    return net.eval()


def fold_of(name: str) -> int:
    return int.from_bytes(hashlib.sha256(("fold:" + name).encode()).digest()[:4], "little") % FOLDS


class Setting(NamedTuple):
    """One ensemble size and variant, scored out of fold on the train split."""

    rank: tuple[float, float, float]  # masked >= 32, >= 32 and all-face recall at the threshold, rounded
    members: int
    mirror: bool
    iterations: int
    contained: float
    fusion: Any
    threshold: float
    summary: dict
    rows: list  # (image, probabilities, refined boxes) of each train photo with candidates, out of fold

    @property
    def costly(self) -> bool:
        return self.mirror or self.iterations != 1


def tallied(scenes, rows, thr: float, min_face_px: int, contained: float, photos: list[int] | None = None,
            ) -> DetectionTally:
    """What ``CrowdFinder.fuse`` would keep at ``thr`` (refined boxes) on the rows' photos, or on ``photos`` in their
    order, a photo without a row (no candidates) counting its faces as missed."""
    by_image = {i: (prob, boxes) for i, prob, boxes in rows}
    nothing = (np.zeros(0, np.float32), np.zeros((0, 4), np.float32))
    t = DetectionTally()
    for i in ([i for i, _, _ in rows] if photos is None else photos):
        prob, boxes = by_image.get(i, nothing)
        keep = select_faces(boxes, prob, thr, min_face_px, dedupe=True, contained=contained) if len(prob) else []
        t.add(scenes[i].boxes, scenes[i].states, boxes[keep], prob[keep])
    return t


def tally(scenes, rows, thr: float, min_face_px: int, contained: float) -> dict:
    """Train-split detection numbers of what ``CrowdFinder.fuse`` would keep at ``thr`` (refined boxes)."""
    return tallied(scenes, rows, thr, min_face_px, contained).summary()


def operating_point(scenes, rows, train: list[int], min_face_px: int, contained: float) -> tuple[float, dict]:
    """The threshold the finder ships with: of 0.10-0.60, the one at which the issue's goal (masked faces >= 32 px
    found >= 95% with <= 5% false boxes >= 32 px) holds in the most bootstrap draws of the train photos, out of fold;
    of those within one point of the most, the lowest, which keeps the most small faces. Until the twenty-fifth
    session it was the lowest keeping 95% precision on boxes >= 32 px, which puts it on the goal's edge by
    construction (the goal held in about half of the draws). Returns it and each threshold's share."""
    from periface.evaluation.detect_eval import goal_interval

    shares = {}
    for thr in np.round(np.arange(0.10, 0.601, 0.01), 2):
        counts = tallied(scenes, rows, thr, min_face_px, contained, photos=train).goal_counts()
        shares[float(thr)] = goal_interval(counts)["share_of_resamples_meeting_goal"]
    most = max(shares.values())
    return min(thr for thr, share in shares.items() if share >= most - 0.01), shares


def main() -> int:
    import torch
    from sklearn.linear_model import LogisticRegression

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workers", type=int, default=1, help="networks trained side by side (one core each)")
    ap.add_argument("--context", type=float, default=CONTEXT, help="crop side / box side the refiner looks at")
    ap.add_argument("--members", type=int, default=3,
                    help="networks per fold and at most in the shipped ensemble (other seeds); 1 was shipped until the "
                         "twelfth session")
    ap.add_argument("--compare-only", action="store_true", help="print the out-of-fold numbers, write nothing")
    ap.add_argument("--skip-costly", action="store_true",
                    help="score only the single plain look (a quarter of the time), not mirror averaging or two looks")
    ap.add_argument("--allow-costly", action="store_true",
                    help="let mirror averaging or a second look be chosen (slower at run time)")
    add_machine_arguments(ap, WIDTH)
    ap.add_argument("--pack", type=Path, help="write the scenes' files, boxes and candidates (for a GPU machine) and stop")
    ap.add_argument("--data", type=Path, help="with --train-only: train from this pack instead of the datasets")
    ap.add_argument("--train-only", action="store_true",
                    help="train (or find cached) the fold networks and the final members, then stop")
    args = ap.parse_args()
    finder = CrowdFinder.default(refiner=None)
    if args.data:
        if not args.train_only:
            raise SystemExit("--data is for --train-only (a GPU machine); the fit here recomputes the candidates")
        scenes, cands = read_pack(args.data)
    else:
        scenes = read_scenes(require_datasets() / "mask-scenes")
        cands = scene_candidates(scenes, finder)
    if args.pack:
        write_pack(scenes, cands, args.pack)
        return 0
    train = [i for i, s in enumerate(scenes) if split_of(s.image.name) == "train"]

    # Refiners per fold of the train images, each to be run on the fold it did not see.
    _SHARED.update(scenes=scenes, cands=cands, train=train, context=args.context, width=args.width, device=args.device)
    jobs = [(fold, member) for member in range(args.members) for fold in range(FOLDS)]
    net_key = training_key(finder, args.context, args.width)
    if args.train_only:
        train_missing([(train_fold, job) for job in jobs] + [(train_final, m) for m in range(args.members)],
                      args.workers, net_key)
        return 0
    states = dict(zip(jobs, cached_jobs(train_fold, jobs, args.workers, net_key)))
    fold_members = [[torch_outputs(load_net(states[fold, m])) for m in range(args.members)] for fold in range(FOLDS)]

    # Per ensemble size and variant: out-of-fold logits and boxes, the fusion fitted on them (labels judged on the
    # refined boxes, as CrowdFinder.fuse produces them), its threshold, and the train numbers it reaches.
    results = []
    variants = VARIANTS[:1] if args.skip_costly else VARIANTS
    for members, (mirror, iterations) in [(k, v) for k in range(1, args.members + 1) for v in variants]:
        fold_nets = [mean_outputs(m[:members]) for m in fold_members]
        oof = {i: refine_boxes(fold_nets[fold_of(scenes[i].image.name)], cands[i][0], cands[i][1].boxes, mirror,
                               iterations, args.context) for i in train if len(cands[i][1])}
        x = np.concatenate([candidate_features(cands[i][1], oof[i][0]) for i in oof])
        y = np.concatenate([match(scenes[i].boxes, oof[i][1], cands[i][1].best.max(1))[1] for i in oof])
        model = LogisticRegression(C=1.0, max_iter=5000).fit(x, y)
        fusion = Fusion(model.coef_[0].astype(np.float32), float(model.intercept_[0]), 0.5)
        rows = [(i, fusion.probability(cands[i][1], oof[i][0]), oof[i][1]) for i in oof]
        for contained in CONTAINED:
            threshold = lowest_threshold_keeping_precision(
                lambda t: tally(scenes, rows, t, finder.min_face_px, contained), TARGET_PRECISION)
            s = tally(scenes, rows, threshold, finder.min_face_px, contained)
            key = (round(s["masked>=32"]["recall"], 3), round(s[">=32"]["recall"], 3), round(s["all"]["recall"], 3))
            print(f"train (out of fold), members={members} mirror={mirror} iterations={iterations} "
                  f"contained={contained}: threshold {threshold:.2f}, masked >=32 {key[0]:.3f}, recall >=32 "
                  f"{key[1]:.3f}, all {key[2]:.3f}, precision >=32 {s['>=32']['precision']:.3f}, "
                  f"AP all {s['all'].get('ap', float('nan')):.3f}", flush=True)
            results.append(Setting(key, members, mirror, iterations, contained, fusion, threshold, s, rows))
    eligible = [r for r in results if args.allow_costly or not r.costly]
    best = eligible[0]
    for r in eligible[1:]:
        if r.rank > best.rank:  # strictly better, else the simpler one stays
            best = r
    _, members, mirror, iterations, contained, fusion, at_target_precision, _, rows = best
    print(f"chosen: members={members} mirror={mirror} iterations={iterations} contained={contained}", flush=True)
    threshold, shares = operating_point(scenes, rows, train, finder.min_face_px, contained)
    s = tally(scenes, rows, threshold, finder.min_face_px, contained)
    share_at_target = shares.get(round(at_target_precision, 2), 0)
    print(f"operating point {threshold:.2f}: the goal holds in {shares[threshold]:.1%} of the draws of the train photos "
          f"(at {TARGET_PRECISION:.0%} precision, {at_target_precision:.2f}: {share_at_target:.1%}); "
          f"masked >=32 {s['masked>=32']['recall']:.3f}, all {s['all']['recall']:.3f}, AP {s['all']['ap']:.3f}", flush=True)
    if args.compare_only:
        return 0

    # Final refiner(s) on every train image.
    nets = [load_net(state) for state in cached_jobs(train_final, list(range(members)), args.workers, net_key)]
    net = nets[0] if members == 1 else ensemble_module(nets)
    torch.onnx.export(net, torch.zeros(1, 3, INPUT_PX, INPUT_PX), str(MODEL_FILE), input_names=["image"],
                      output_names=["outputs"], dynamic_axes={"image": {0: "n"}, "outputs": {0: "n"}}, dynamo=False)
    record_sha256(MODEL_FILE)
    cfg = json.loads(CALIBRATION_FILE.read_text())
    cfg.update({
        "fitted_on": "mask-scenes train split (split_of): benchmarks/detect_scenes.py --fit, scripts/finetune_yunet.py "
                     "(the yunet_scenes pass), then scripts/train_face_refiner.py",
        "refiner": {"file": MODEL_FILE.name, "members": members, "mirror": mirror, "iterations": iterations,
                    "context": args.context, "width": args.width,
                    "fusion_fitted_on": "out-of-fold refiner outputs, 4 folds of the train images",
                    "written_with": training_environment(),  # (networks taken from the cache may be older)
                    "variants_on_train_out_of_fold": {f"members={k} mirror={m} iterations={it} contained={c}": {
                        "masked>=32": key[0], ">=32": key[1], "all": key[2], "threshold": round(t, 3)}
                        for key, k, m, it, c, _, t, _, _ in results}},
        "coef": [round(float(v), 6) for v in fusion.coef], "intercept": round(fusion.intercept, 6),
        "threshold": round(threshold, 3), "contained": contained,
        "threshold_rule": "of 0.10-0.60, the one at which the detection goal holds in the most bootstrap draws of the "
                          "train photos out of fold (within one point: the lowest)",
        "goal_share_of_draws": {"at_threshold": round(shares[threshold], 3),
                                f"at_{TARGET_PRECISION:g}_precision_{at_target_precision:.2f}":
                                    round(share_at_target, 3)},
        "train_recall": {">=32": s[">=32"]["recall"], "all": s["all"]["recall"], "masked>=32": s["masked>=32"]["recall"]},
    })
    CALIBRATION_FILE.write_text(json.dumps(cfg, indent=1) + "\n")
    print(f"wrote {MODEL_FILE} ({MODEL_FILE.stat().st_size / 1e3:.0f} kB) and {CALIBRATION_FILE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
