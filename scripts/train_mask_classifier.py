"""Train the mask-state CNN (none / correct / incorrect) and write src/periface/data/mask_state.onnx.

Training needs the extra ``torch`` (``pip install torch==2.13.0``, CPU); inference does not (onnxruntime).

Data, split by a fixed hash of each file name (``periface.evaluation.voc.split_of``, 25% test; the same split every
component holds out):
  mask-crops/without_mask -> none           mask-crops/with_mask -> correct
  mask-crops/synthetic_correct -> correct    mask-crops/synthetic_incorrect -> incorrect, except its
      ``*_Mask_Nose_Mouth`` files (only the chin uncovered: nose and mouth ARE covered) -> correct
  mask-scenes boxed faces (with_mask / without_mask / mask_weared_incorrect), split by scene file name
  renders: ``periface.mask.render.add_mask`` on every without_mask crop (split of the source crop), coverage
      "full" -> correct, "nose_exposed" / "chin" -> incorrect
  lfw: 600 LFW photos of people in no LFW evaluation protocol (the robust backbone's training list), unmasked ->
      none plus one render each, every face boxed twice: by ``FaceFinder`` and by ``CrowdFinder`` (whose boxes follow
      the scenes' annotation convention), so that a large sharp face is not "masked" just because of its box
Crop faces find their box with ``FaceFinder.find_in_crop`` (as at run time); scene faces use the annotated box.
Each sample is stored as a square context of 1.6x the box side (96 px); training draws 1.1-1.4x crops with jitter,
run time uses ``CONTEXT`` (1.25x) - see ``periface.mask.classify``.

The shipped model is an ensemble: ``MEMBERS`` CNNs (seeds 0, 1, 2) whose probabilities are averaged over the crop
and its mirror image, exported as one ONNX graph. That choice was made with ``--validate``, which trains on the
train split minus a fixed validation part (file-name hash band [0.25, 0.45)) and compares 1-3 members with and
without mirroring there (results/mask_classifier_validation.json); the test split was not consulted.

    OMP_NUM_THREADS=1 python scripts/train_mask_classifier.py     # seeds 0-2; data cached in .cache/mask_cnn_data.npz
    python scripts/train_mask_classifier.py --pack .gpu/mask_pack.npz && python scripts/train_mask_classifier.py \
        --data .gpu/mask_pack.npz                                  # as shipped: trained from the pack (see below)
    OMP_NUM_THREADS=1 python scripts/train_mask_classifier.py --validate    # the ensemble-size / mirroring choice
    OMP_NUM_THREADS=1 python scripts/train_mask_classifier.py --cross-validate --workers 2   # out of fold, 4 folds

``--cross-validate`` trains the recipe once per fold of the train split (12 networks, ~65 min on 2 cores at 45
epochs and width 1) and scores every train-split sample with the networks that did not see it: 1,560 scene faces
instead of the test split's 496, and inference-time views compared pairwise on the same networks (``--views
shipped`` scores only the shipped one). Every trained network is kept in .cache/mask_cnn_nets/ under a key of the
recipe, the training code and the samples, so a rerun only evaluates.

On a GPU machine (no datasets there): ``--pack`` writes the trainable samples as JPEGs (``PACK_QUALITY``, ~35 MB),
``scripts/train_mask_classifier_gpu.sh PACK "WIDTH EPOCHS MEMBERS"...`` trains recipes side by side there from the
pack alone (``--train-only --device cuda``), and with the networks brought back the usual commands plus ``--data
PACK`` evaluate and export here. The CPU path is the same commands with ``--data PACK`` and without ``--device``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from _parallel import add_machine_arguments, run_jobs, save_network, training_environment  # noqa: E402

from periface.detect import FaceFinder  # noqa: E402
from periface.evaluation.datasets import require_datasets  # noqa: E402
from periface.evaluation.detect_eval import FittingImages  # noqa: E402
from periface.evaluation.metrics import percentile_interval, resampled_sums  # noqa: E402
from periface.evaluation.voc import name_hash, read_scenes, split_of  # noqa: E402
from periface.faces import MASK_STATES  # noqa: E402
from periface.image import cnn_input, context_crop, load_image  # noqa: E402
from periface.mask.classify import (  # noqa: E402
    CONTEXT, INPUT_PX, MODEL_FILE, OnnxMaskClassifier, states_from_probabilities,
)
from periface.models import record_sha256  # noqa: E402

DATA_CACHE = Path(".cache/mask_cnn_data.npz")
STORE_CONTEXT, STORE_PX = 1.6, 96
SEED = 0
MEMBERS = 3  # chosen with --validate: 3 members + mirror had the best overall validation accuracy
# Chosen out of fold (--cross-validate): 12 epochs until the sixteenth session, 20 in the seventeenth (scene faces
# 94.1% against 93.0%, real crops 98.1% against 98.0%), 30 in the eighteenth (94.7% and 98.2%, no source worse), 45
# since the nineteenth: scene faces tied (1,478 of 1,560 both), the faces the crowd finder found, at its own box,
# 94.2% -> 95.3%, real crops 98.2% -> 98.5%.
EPOCHS = 45
WIDTH = 2.0  # chosen out of fold in the twentieth session (widths 1, 1.5 and 2 trained on a GPU; docs/crowds.md)


def crop_state(folder: str, name: str) -> str:
    if folder == "without_mask":
        return "none"
    if folder == "synthetic_incorrect" and not name.endswith("_Mask_Nose_Mouth.jpg"):
        return "incorrect"
    return "correct"


def as_columns(rows: list[tuple[str, str, str, str, np.ndarray]]) -> dict[str, np.ndarray]:
    """(source, name, split, state, 96-px context) rows -> the cache's column arrays."""
    return {key: (np.stack if key == "x" else np.array)([r[k] for r in rows])
            for k, key in enumerate(("source", "name", "split", "state", "x"))}


def collect(root: Path) -> dict[str, np.ndarray]:
    from periface.mask.render import add_mask

    finder = FaceFinder.default()
    rows: list[tuple[str, str, str, str, np.ndarray]] = []  # source, name, split, state, 96-px context

    def add(source, name, split, state, rgb, box):
        rows.append((source, name, split, state, context_crop(rgb, box, STORE_CONTEXT, STORE_PX)))

    t0 = time.time()
    for folder in ("without_mask", "with_mask", "synthetic_correct", "synthetic_incorrect"):
        for i, path in enumerate(sorted((root / "mask-crops" / folder).glob("*.jpg"))):
            rgb = load_image(path)
            box = finder.find_in_crop(rgb).boxes[0]
            split = split_of(path.name)
            add(f"crops/{folder}", path.name, split, crop_state(folder, path.name), rgb, box)
            if folder == "without_mask":
                # A render per unmasked crop: half worn correctly, half not (nose exposed or under the chin).
                coverage = ("full", "nose_exposed", "chin")[int(np.random.default_rng(i).choice(3, p=[0.45, 0.35, 0.2]))]
                out = add_mask(rgb, seed=i, coverage=coverage)
                if out is not None:
                    add("renders", path.name, split, "correct" if coverage == "full" else "incorrect", out.image, box)
        print(f"{folder}: {len(rows)} samples, {time.time() - t0:.0f} s", flush=True)
    for scene in read_scenes(root / "mask-scenes"):
        rgb = load_image(scene.image)
        for k, (box, state) in enumerate(zip(scene.boxes, scene.states)):
            if state != "unknown" and min(box[2] - box[0], box[3] - box[1]) >= 4:
                add("scenes", f"{scene.image.name}#{k}", split_of(scene.image.name), state, rgb, box)
    print(f"scenes: {len(rows)} samples, {time.time() - t0:.0f} s", flush=True)
    return as_columns(rows)


def collect_scene_detections(root: Path) -> dict[str, np.ndarray]:
    """The scene faces again, cropped at the box ``CrowdFinder`` puts on them (matched at IoU 0.5, the annotation's
    label): at run time the CNN sees the finder's boxes, not the annotator's. On the held-out scenes the shipped CNN
    called 96.3% of the found faces right from the annotated box and 93.8% from the found one (sixteenth session)."""
    from periface.detect.crowd import CrowdFinder
    from periface.evaluation.detection import assign

    finder = CrowdFinder.default()
    rows: list[tuple[str, str, str, str, np.ndarray]] = []
    for scene in read_scenes(root / "mask-scenes"):
        rgb = load_image(scene.image)
        faces = finder.find(rgb)
        for d, g in enumerate(assign(scene.boxes, faces.boxes, faces.scores)):
            if g >= 0 and scene.states[g] in MASK_STATES:
                rows.append(("scene_detections", f"{scene.image.name}#{g}", split_of(scene.image.name),
                             scene.states[g], context_crop(rgb, faces.boxes[d], STORE_CONTEXT, STORE_PX)))
    return as_columns(rows)


LFW_FACES = 600  # large, sharp faces, unmasked and rendered, each boxed by both detectors' conventions


def collect_lfw(root: Path) -> dict[str, np.ndarray]:
    """Large LFW faces of people who appear in no LFW evaluation protocol (the robust backbone's training list),
    unmasked -> none and with one render each, boxed by ``FaceFinder`` (detector box) and by ``CrowdFinder``
    (annotation-style box, forehead cut): the scenes alone taught the CNN that big annotation-boxed faces are masked."""
    from periface.detect.crowd import CrowdFinder
    from periface.evaluation.pipelines import central
    from periface.mask.render import add_mask

    listed = [ln.split("\t")[2] for ln in (Path(__file__).resolve().parents[1] / "src/periface/data/robust/train_list.txt")
              .read_text().splitlines() if ln.startswith("lfw\t")]
    pick = sorted(np.random.default_rng(SEED).choice(len(listed), size=min(LFW_FACES, len(listed)), replace=False))
    finders = (FaceFinder.default(), CrowdFinder.default())
    rows: list[tuple[str, str, str, str, np.ndarray]] = []
    for n, i in enumerate(pick):
        rel = listed[i]
        rgb = load_image(root / rel)
        coverage = ("full", "nose_exposed", "chin")[int(np.random.default_rng(n).choice(3, p=[0.45, 0.35, 0.2]))]
        render = add_mask(rgb, seed=n, coverage=coverage)
        for finder in finders:
            faces = finder.find(rgb)
            j = central(faces.boxes, rgb.shape[:2])
            if j is None:
                continue
            box, split = faces.boxes[j], split_of(Path(rel).name)
            rows.append(("lfw", rel, split, "none", context_crop(rgb, box, STORE_CONTEXT, STORE_PX)))
            if render is not None:
                rows.append(("lfw_renders", rel, split, "correct" if coverage == "full" else "incorrect",
                             context_crop(render.image, box, STORE_CONTEXT, STORE_PX)))
    return as_columns(rows)


def build_net(width: float = 1.0):
    """``width`` scales every layer's channels (1: 16/32/64/96, 84k parameters; 2, shipped: 324k)."""
    import torch.nn as nn

    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    c1, c2, c3, c4 = (round(c * width) for c in (16, 32, 64, 96))
    return nn.Sequential(
        *block(3, c1), nn.MaxPool2d(2),  # 32
        *block(c1, c2), nn.MaxPool2d(2),  # 16
        *block(c2, c3), nn.MaxPool2d(2),  # 8
        *block(c3, c4), nn.MaxPool2d(2),  # 4: keep the layout (where the mask edge sits), no global pooling
        nn.Flatten(), nn.Dropout(0.3), nn.Linear(c4 * 16, 3),
    )


BOX_JITTER = 0.05


def augment(batch: np.ndarray, rng: np.random.Generator, box_jitter: float = BOX_JITTER) -> np.ndarray:
    """96-px contexts -> jittered INPUT_PX crops: shift (sd ``box_jitter`` of the box side), scale 1.25x box
    +- 3 ``box_jitter`` (1.1-1.4x by default), small rotation, flip, colour, blur."""
    out = np.empty((len(batch), INPUT_PX, INPUT_PX, 3), np.uint8)
    c = STORE_PX / 2
    for i, img in enumerate(batch):
        side = STORE_PX * rng.uniform(1.25 - 3 * box_jitter, 1.25 + 3 * box_jitter) / STORE_CONTEXT
        box_side = STORE_PX / STORE_CONTEXT
        cx, cy = c + rng.normal(0, box_jitter) * box_side, c + rng.normal(0, box_jitter) * box_side
        m = cv2.getRotationMatrix2D((cx, cy), rng.normal(0, 8), INPUT_PX / side)
        m[:, 2] += INPUT_PX / 2 - np.array([cx, cy])
        crop = cv2.warpAffine(img, m, (INPUT_PX, INPUT_PX), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        if rng.random() < 0.3:  # small, blurry faces of crowds
            s = rng.uniform(0.25, 0.6)
            small = cv2.resize(crop, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
            crop = cv2.resize(small, (INPUT_PX, INPUT_PX), interpolation=cv2.INTER_LINEAR)
        f = crop.astype(np.float32) * rng.uniform(0.7, 1.3) + rng.uniform(-25, 25)
        if rng.random() < 0.2:
            f = f.mean(axis=2, keepdims=True).repeat(3, axis=2)
        out[i] = np.clip(f, 0, 255).astype(np.uint8)
    return out


def view_crops(batch: np.ndarray, context: float, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    """INPUT_PX crops of ``context`` x the box side from stored contexts, the centre moved by (dx, dy) box sides."""
    side, box_side = STORE_PX * context / STORE_CONTEXT, STORE_PX / STORE_CONTEXT
    s = INPUT_PX / side
    cx, cy = STORE_PX / 2 + dx * box_side, STORE_PX / 2 + dy * box_side
    m = np.array([[s, 0, INPUT_PX / 2 - cx * s], [0, s, INPUT_PX / 2 - cy * s]], np.float32)
    return np.stack([cv2.warpAffine(b, m, (INPUT_PX, INPUT_PX), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)
                     for b in batch])


def centre(batch: np.ndarray) -> np.ndarray:
    """The run-time view of stored contexts (the same crop ``context_crop`` makes from a box)."""
    return view_crops(batch, CONTEXT)


SCENE_WEIGHT = 2.0


def train_member(data: dict[str, np.ndarray], rows: np.ndarray, epochs: int, seed: int,
                 box_jitter: float = BOX_JITTER, scene_weight: float = SCENE_WEIGHT, width: float = 1.0,
                 device: str = "cpu"):
    """One CNN trained on ``rows`` of ``data`` with ``seed``; returns the torch module in eval mode, on the CPU.
    ``device`` only says where the network's arithmetic runs ("cuda" on a GPU machine); the crops are drawn and
    augmented on the CPU either way, with the same random stream."""
    import torch

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    y = np.array([MASK_STATES.index(s) for s in data["state"]])
    # Scenes are the hardest and most like deployment: drawn twice as often. Classes balanced by weight.
    weight = np.where(np.char.startswith(data["source"][rows].astype(str), "scene"), scene_weight, 1.0)
    counts = np.bincount(y[rows], weights=weight, minlength=3)
    weight = weight / counts[y[rows]]
    weight /= weight.sum()
    net = build_net(width).to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=1e-3)
    steps_per_epoch, bs = len(rows) // 64, 64
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 3e-3, total_steps=epochs * steps_per_epoch)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=0.05)
    for epoch in range(epochs):
        net.train()
        t0, total = time.time(), torch.zeros(())
        for _ in range(steps_per_epoch):
            idx = rows[rng.choice(len(rows), bs, p=weight)]
            xb = torch.from_numpy(cnn_input(augment(data["x"][idx], rng, box_jitter))).to(device)
            loss = loss_fn(net(xb), torch.from_numpy(y[idx]).to(device))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total = total.to(device) + loss.detach()  # summed where it is computed: no GPU wait per step
        print(f"seed {seed} epoch {epoch + 1}/{epochs}: loss {float(total) / steps_per_epoch:.3f}, {time.time() - t0:.0f} s",
              flush=True)
    return net.cpu().eval()


def ensemble(nets: list, mirror: bool):
    """One module: the mean of the members' probabilities, over the crop and (``mirror``) its mirror image; it
    outputs log-probabilities, so the run-time softmax gives that mean back."""
    import torch

    class MaskStateEnsemble(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.members = torch.nn.ModuleList(nets)

        def forward(self, image):
            views = [image, torch.flip(image, dims=[3])] if mirror else [image]
            probs = [torch.softmax(net(v), dim=1) for net in self.members for v in views]
            return torch.log(torch.stack(probs).mean(dim=0))

    return MaskStateEnsemble().eval()


def export(model) -> None:
    import onnx
    import torch

    exported = io.BytesIO()
    torch.onnx.export(model, torch.zeros(1, 3, INPUT_PX, INPUT_PX), exported, input_names=["image"],
                      output_names=["logits"], dynamic_axes={"image": {0: "n"}, "logits": {0: "n"}}, dynamo=False)
    # Which environment wrote the file, in the file (networks taken from the cache may be older), so that a rebuild
    # that differs can tell a moved environment from a changed recipe.
    graph = onnx.load_from_string(exported.getvalue())
    onnx.helper.set_model_props(graph, {"written_with": json.dumps(training_environment(), sort_keys=True)})
    onnx.save(graph, str(MODEL_FILE))
    digest = record_sha256(MODEL_FILE)
    print(f"wrote {MODEL_FILE} ({MODEL_FILE.stat().st_size / 1e3:.0f} kB, sha256 {digest[:12]})")


def torch_probabilities(model, crops: np.ndarray) -> np.ndarray:
    import torch

    with torch.no_grad():
        return np.concatenate([torch.exp(model(torch.from_numpy(cnn_input(crops[i:i + 256])))).numpy()
                               for i in range(0, len(crops), 256)])


def sample_file(name: str) -> str:
    """The file name a sample's split is drawn from ("scene_1.png#3" -> "scene_1.png", "lfw/x/x_1.jpg" -> "x_1.jpg")."""
    return name.split("#")[0].split("/")[-1]


def validation_rows(data: dict[str, np.ndarray]) -> np.ndarray:
    """A fixed fifth-or-so of the train split (hash band [0.25, 0.45) of the file name; the test split is [0, 0.25))
    on which the ensemble size and mirroring are chosen, so that the test split judges a choice it did not make."""
    h = np.array([name_hash(sample_file(n)) for n in data["name"]])
    return (data["split"] == "train") & (h < 0.45)


def validate(data: dict[str, np.ndarray], epochs: int, members: int, fit_sources: np.ndarray,
             box_jitter: float = BOX_JITTER, scene_weight: float = SCENE_WEIGHT, width: float = 1.0) -> dict:
    """Train ``members`` CNNs on train minus validation; score single / mirrored / ensembles on validation."""
    val = validation_rows(data)
    fit_rows = np.flatnonzero((data["split"] == "train") & ~val & fit_sources)
    nets = [train_member(data, fit_rows, epochs, seed, box_jitter, scene_weight, width) for seed in range(members)]
    rows = np.flatnonzero(val)
    crops = centre(data["x"][rows])
    y = np.array([MASK_STATES.index(s) for s in data["state"][rows]])
    src = data["source"][rows]
    sc, real = src == "scenes", np.isin(src, ["crops/with_mask", "crops/without_mask"])
    report: dict = {"fit_n": len(fit_rows), "validation_n": len(rows), "epochs": epochs}
    for k in range(1, members + 1):
        for mirror in (False, True):
            prob = torch_probabilities(ensemble(nets[:k], mirror), crops)
            pred = np.array([MASK_STATES.index(s) for s in states_from_probabilities(prob)])
            key = f"members={k} mirror={mirror}"
            report[key] = {"scenes_three_way": float(np.mean(pred[sc] == y[sc])),
                           **{f"{s}_three_way": float(np.mean(pred[src == s] == y[src == s]))
                              for s in sorted(set(src)) if s.startswith("scene_")},
                           "real_crops_masked_vs_none": float(np.mean((pred[real] > 0) == (y[real] > 0))),
                           "all_three_way": float(np.mean(pred == y))}
            print(key, report[key], flush=True)
    return report


FOLDS = 4
NET_CACHE = Path(".cache/mask_cnn_nets")
# Inference-time views compared by --cross-validate: the crops (context, dx, dy) whose probabilities are averaged, and
# whether each is averaged with its mirror image as well.
SCALES3, SCALES2 = [(CONTEXT + d, 0.0, 0.0) for d in (-0.15, 0.0, 0.15)], [(CONTEXT + d, 0.0, 0.0) for d in (-0.1, 0.1)]
SHIFTS = [(CONTEXT, dx, dy) for dx, dy in ((0.0, 0.0), (0.06, 0.0), (-0.06, 0.0), (0.0, 0.06), (0.0, -0.06))]
VIEWS = {
    "one crop": ([(CONTEXT, 0.0, 0.0)], False),
    "crop + mirror (shipped)": ([(CONTEXT, 0.0, 0.0)], True),
    "3 scales": (SCALES3, False),
    "3 scales + mirror": (SCALES3, True),
    "2 scales + mirror": (SCALES2, True),
    "5 shifts": (SHIFTS, False),
    "5 shifts + mirror": (SHIFTS, True),
}
SHIPPED_VIEWS = "crop + mirror (shipped)"


def fold_of_rows(data: dict[str, np.ndarray]) -> np.ndarray:
    """Each train-split sample's fold: ``FOLDS`` equal bands of the file-name hash above the test split's [0, 0.25),
    so that every face of one photo (and a crop and its render) falls in one fold; -1 for the test split."""
    h = np.array([name_hash(sample_file(n)) for n in data["name"]])
    band = np.minimum(((h - 0.25) / (0.75 / FOLDS)).astype(int), FOLDS - 1)
    return np.where(data["split"] == "train", band, -1)


_SHARED: dict = {}  # the samples, set before the workers fork so that they are not pickled into every job


def _train_job(job: tuple) -> None:
    path, rows, epochs, seed, box_jitter, scene_weight, width, device = job
    save_network(train_member(_SHARED["data"], rows, epochs, seed, box_jitter, scene_weight, width, device).state_dict(),
                 path)


def load_member(state: dict, width: float):
    net = build_net(width)
    net.load_state_dict(state)
    return net.eval()


def net_cache_key(data: dict[str, np.ndarray], fit_sources: np.ndarray, args) -> str:
    """What a trained network depends on besides its fold and seed: the recipe, the training code and the samples
    it may be trained on (the train split's, of the sources not left out; and the JPEG pack's digest when it trains
    from one, ``--data``)."""
    import inspect

    recipe = json.dumps([args.epochs, args.box_jitter, args.scene_weight, sorted(args.leave_out), FOLDS, SEED,
                         args.width])
    code = "".join(inspect.getsource(f) for f in (build_net, augment, train_member))
    samples = "|".join(data["name"][(data["split"] == "train") & fit_sources])
    pack = hashlib.sha256(args.data.read_bytes()).hexdigest() if args.data else ""
    return hashlib.sha256((recipe + code + samples + pack).encode()).hexdigest()[:12]


def trained_networks(data: dict[str, np.ndarray], fit_sources: np.ndarray, jobs: list[tuple[int | None, int]],
                     args) -> list:
    """The CNN of each (fold, seed) job: trained on the train split minus ``fold`` (``None``: the whole train split,
    as shipped). Kept in ``NET_CACHE`` under ``net_cache_key``, so a rerun only evaluates and a GPU machine's
    networks (``--train-only --device cuda``, docs/crowds.md) are picked up here; what is missing is trained,
    ``args.workers`` side by side."""
    import torch

    key = net_cache_key(data, fit_sources, args)
    fold = fold_of_rows(data)
    path = {job: NET_CACHE / (f"{key}-final-seed{job[1]}.pt" if job[0] is None else f"{key}-fold{job[0]}-seed{job[1]}.pt")
            for job in jobs}
    todo = [job for job in jobs if not path[job].exists()]
    _SHARED["data"] = data
    NET_CACHE.mkdir(parents=True, exist_ok=True)
    run_jobs(_train_job, [(path[k, seed], np.flatnonzero((fold >= 0) & (fold != k) & fit_sources) if k is not None
                           else np.flatnonzero((fold >= 0) & fit_sources),
                           args.epochs, seed, args.box_jitter, args.scene_weight, args.width, args.device)
                          for k, seed in todo], args.workers)
    return [load_member(torch.load(path[job]), args.width) for job in jobs]


def fold_jobs(members: int) -> list[tuple[int | None, int]]:
    return [(k, SEED + m) for k in range(FOLDS) for m in range(members)]


def final_jobs(members: int) -> list[tuple[int | None, int]]:
    return [(None, SEED + m) for m in range(members)]


def fold_networks(data: dict[str, np.ndarray], fit_sources: np.ndarray, args) -> list[list]:
    """``args.members`` CNNs per fold, each trained as the shipped ones on the train split minus that fold."""
    nets = trained_networks(data, fit_sources, fold_jobs(args.members), args)
    return [nets[k * args.members:(k + 1) * args.members] for k in range(FOLDS)]


PACK_QUALITY = 90  # mean error 2.7 grey levels; 95 made the pack too large to travel with the repository


def write_pack(data: dict[str, np.ndarray], fit_sources: np.ndarray, path: Path) -> None:
    """The samples training may use (train split, sources not left out), each context as a JPEG (quality
    ``PACK_QUALITY``): a tenth of the cache's size, small enough to travel to a GPU machine (64 MiB a call with the
    repository), where ``--data`` trains from it."""
    rows = np.flatnonzero((data["split"] == "train") & fit_sources)
    params = [cv2.IMWRITE_JPEG_QUALITY, PACK_QUALITY]
    blobs = [cv2.imencode(".jpg", cv2.cvtColor(data["x"][i], cv2.COLOR_RGB2BGR), params)[1].ravel() for i in rows]
    np.savez(path, **{k: data[k][rows] for k in ("source", "name", "split", "state")},
             jpeg=np.concatenate(blobs), ends=np.cumsum([len(b) for b in blobs]))
    print(f"wrote {path}: {len(rows)} train-split samples, {path.stat().st_size / 1e6:.1f} MB")


def read_pack(path: Path) -> dict[str, np.ndarray]:
    pack = dict(np.load(path))
    starts = np.concatenate([[0], pack["ends"][:-1]])
    x = np.stack([cv2.cvtColor(cv2.imdecode(pack["jpeg"][a:b], cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
                  for a, b in zip(starts, pack["ends"])])
    return {**{k: pack[k] for k in ("source", "name", "split", "state")}, "x": x}


def with_pack(data: dict[str, np.ndarray] | None, pack: dict[str, np.ndarray], leave_out: list[str]) -> dict[str, np.ndarray]:
    """Training samples from ``pack``: the cache with the contexts training may use replaced by the pack's
    (evaluation keeps the cache's), or the pack alone on a machine without the cache (``--train-only``)."""
    if data is None:
        return pack
    rows = np.flatnonzero((data["split"] == "train") & ~np.isin(data["source"], leave_out))
    if not np.array_equal(data["name"][rows], pack["name"]) or not np.array_equal(data["source"][rows], pack["source"]):
        raise SystemExit("the pack does not hold this cache's train split: rebuild it with --pack")
    x = data["x"].copy()
    x[rows] = pack["x"]
    return {**data, "x": x}


def out_of_fold_probabilities(data: dict[str, np.ndarray], fold: np.ndarray, nets: list[list],
                              views: dict) -> dict[str, np.ndarray]:
    """Per view in ``views`` (of ``VIEWS``): every train-split sample's probabilities from its fold's members, through the same
    ensemble module that is exported."""
    probs = {v: np.full((len(fold), 3), np.nan) for v in views}
    for k, members in enumerate(nets):
        rows = np.flatnonzero(fold == k)
        seen: dict[tuple, np.ndarray] = {}

        def at(crop: tuple, mirror: bool) -> np.ndarray:
            if (crop, mirror) not in seen:
                seen[crop, mirror] = torch_probabilities(ensemble(members, mirror), view_crops(data["x"][rows], *crop))
            return seen[crop, mirror]

        for v, (crops, mirror) in views.items():
            probs[v][rows] = np.mean([at(crop, mirror) for crop in crops], axis=0)
    return probs


def cross_validate(data: dict[str, np.ndarray], train_data: dict[str, np.ndarray], fit_sources: np.ndarray,
                   args) -> dict:
    """Out of fold on every train-split sample: what the shipped recipe reaches on photos it did not see, with far
    less noise than the 496 held-out scene faces, and which inference-time views help (paired with the shipped)."""
    from sklearn.metrics import confusion_matrix

    fold = fold_of_rows(data)
    nets = fold_networks(train_data, fit_sources, args)
    views = VIEWS if args.views == "all" else {SHIPPED_VIEWS: VIEWS[SHIPPED_VIEWS]}
    probs = out_of_fold_probabilities(data, fold, nets, views)
    y = np.array([MASK_STATES.index(s) for s in data["state"]])
    pred = {v: np.array([MASK_STATES.index(s) for s in states_from_probabilities(np.nan_to_num(p))])
            for v, p in probs.items()}
    src = data["source"]
    real = np.isin(src, ["crops/with_mask", "crops/without_mask"])

    def right(v: str, rows: np.ndarray) -> np.ndarray:
        # Real crops are judged two-way: their "with_mask" label does not say how the mask is worn.
        p, t = pred[v][rows], y[rows]
        return np.where(real[rows], (p > 0) == (t > 0), p == t)

    groups = {s: np.flatnonzero((fold >= 0) & (src == s)) for s in sorted(set(src[fold >= 0]))}
    report: dict = {"folds": FOLDS, "members": args.members, "epochs": args.epochs, "left_out": args.leave_out,
                    "fit_n": [int(((fold >= 0) & (fold != k) & fit_sources).sum()) for k in range(FOLDS)],
                    "accuracy": {}, "paired_with_shipped_views": {}}
    for s, rows in groups.items():
        report["accuracy"][s] = {"n": len(rows), **{v: float(right(v, rows).mean()) for v in views}}
        base = right(SHIPPED_VIEWS, rows)
        report["paired_with_shipped_views"][s] = {
            v: {"right_only_here": int((right(v, rows) & ~base).sum()), "right_only_shipped": int((~right(v, rows) & base).sum())}
            for v in views if v != SHIPPED_VIEWS}
    scene_rows = groups["scenes"]
    report["scenes_confusion"] = {"rows_truth_cols_pred": list(MASK_STATES),
                                  "matrix": confusion_matrix(y[scene_rows], pred[SHIPPED_VIEWS][scene_rows],
                                                             labels=[0, 1, 2]).tolist()}
    # By face size: the shorter side of the annotated box.
    boxes = {s.image.name: s.boxes for s in read_scenes(require_datasets() / "mask-scenes")}
    side = np.array([min(np.diff(boxes[img][int(k)].reshape(2, 2), axis=0)[0])
                     for img, k in (n.split("#") for n in data["name"][scene_rows])])
    report["scenes_by_size"] = {}
    for low, high in ((0, 16), (16, 24), (24, 32), (32, 64), (64, None)):
        sel = (side >= low) & (side < (high or np.inf))
        report["scenes_by_size"][f"{low}-{high or ''} px"] = {
            "n": int(sel.sum()), "accuracy": float(right(SHIPPED_VIEWS, scene_rows[sel]).mean())}
    # The same faces judged at the annotated box and at the box the (shipped) crowd finder put on them.
    if "scene_detections" in groups:
        found = groups["scene_detections"]
        at_box = dict(zip(data["name"][scene_rows], right(SHIPPED_VIEWS, scene_rows)))
        both = [i for i, n in enumerate(data["name"][found]) if n in at_box]
        report["found_faces"] = {"n": len(both),
                                 "at_annotated_box": float(np.mean([at_box[n] for n in data["name"][found][both]])),
                                 "at_found_box": float(right(SHIPPED_VIEWS, found[both]).mean())}
    return report


def accuracy_interval(right: np.ndarray, photo: np.ndarray) -> list[float]:
    """95% bootstrap interval of the share ``right``, drawing whole photos (the faces of one scene together)."""
    _, group = np.unique(photo, return_inverse=True)
    hits, n = resampled_sums(np.stack([np.bincount(group, right.astype(float)), np.bincount(group)], axis=1)).T
    return percentile_interval(hits / n)


def evaluate(data: dict[str, np.ndarray]) -> dict:
    """Test-split numbers, computed with the shipped ONNX model through the run-time code path."""
    from sklearn.metrics import confusion_matrix

    clf = OnnxMaskClassifier.load()
    te = np.flatnonzero(data["split"] == "test")
    prob = np.concatenate([clf.probabilities_of_inputs(centre(data["x"][te[i:i + 256]]))
                           for i in range(0, len(te), 256)])
    pred = np.array([MASK_STATES.index(s) for s in states_from_probabilities(prob)])
    y = np.array([MASK_STATES.index(s) for s in data["state"][te]])
    src = data["source"][te]
    report: dict = {"model_sha256": hashlib.sha256(MODEL_FILE.read_bytes()).hexdigest(), "split": "test (split_of)"}
    for s in sorted(set(src)):
        sel = src == s
        report[s] = {"test_n": int(sel.sum()), "accuracy": float(np.mean(pred[sel] == y[sel]))}
    real = np.isin(src, ["crops/with_mask", "crops/without_mask"])
    # Real crops are judged two-way: their "with_mask" label does not say how it is worn.
    report["real_crops_masked_vs_none"] = float(np.mean((pred[real] > 0) == (y[real] > 0)))
    wm = src == "crops/with_mask"
    report["with_mask_routed_as_masked"] = float(np.mean(pred[wm] > 0))
    wo = src == "crops/without_mask"
    report["without_mask_routed_as_none"] = float(np.mean(pred[wo] == 0))
    sc = src == "scenes"
    report["scenes_three_way"] = float(np.mean(pred[sc] == y[sc]))
    # Two held-out photos are copies of training photos (docs/crowds.md): the faces of the other held-out photos.
    fitting, images = FittingImages.load(), require_datasets() / "mask-scenes" / "images"
    copied = {name for name in {n.split("#")[0] for n in data["name"][te][sc]} if fitting.holds_file(images / name)}
    unseen = sc & ~np.isin([n.split("#")[0] for n in data["name"][te]], sorted(copied))
    report["scenes_unseen_three_way"] = float(np.mean(pred[unseen] == y[unseen]))
    report["scenes_unseen_n"] = int(unseen.sum())
    report["scenes_masked_vs_none"] = float(np.mean((pred[sc] > 0) == (y[sc] > 0)))
    photo = np.array([n.split("#")[0] for n in data["name"][te]])
    report["intervals_95"] = {  # bootstrap over photos (a crop is its own photo): how far one test split can be trusted
        "scenes_three_way": accuracy_interval(pred[sc] == y[sc], photo[sc]),
        "scenes_unseen_three_way": accuracy_interval(pred[unseen] == y[unseen], photo[unseen]),
        "real_crops_masked_vs_none": accuracy_interval((pred[real] > 0) == (y[real] > 0), photo[real]),
    }
    found = src == "scene_detections"
    report["scene_detections_three_way"] = float(np.mean(pred[found] == y[found]))
    report["scene_detections_confusion"] = confusion_matrix(y[found], pred[found], labels=[0, 1, 2]).tolist()
    report["scenes_confusion"] = {"rows_truth_cols_pred": list(MASK_STATES),
                                  "matrix": confusion_matrix(y[sc], pred[sc], labels=[0, 1, 2]).tolist()}
    mfn = np.isin(src, ["crops/synthetic_correct", "crops/synthetic_incorrect"])
    report["maskedfacenet_three_way"] = float(np.mean(pred[mfn] == y[mfn]))
    report["maskedfacenet_confusion"] = confusion_matrix(y[mfn], pred[mfn], labels=[0, 1, 2]).tolist()
    return report


def cached_samples() -> dict[str, np.ndarray]:
    """Every sample's 96-px context, collected once from the datasets into ``DATA_CACHE``."""
    root = require_datasets()
    if DATA_CACHE.exists():
        data = dict(np.load(DATA_CACHE))
    else:
        data = collect(root)
        DATA_CACHE.parent.mkdir(parents=True, exist_ok=True)
        np.savez(DATA_CACHE, **data)
    for source, collect_more in (("lfw", collect_lfw), ("scene_detections", collect_scene_detections)):
        if source not in set(data["source"]):
            extra = collect_more(root)
            data = {k: np.concatenate([data[k], extra[k]]) for k in data}
            np.savez(DATA_CACHE, **data)
    return data


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--members", type=int, default=MEMBERS, help="CNNs averaged in the shipped model")
    ap.add_argument("--no-mirror", action="store_true", help="do not average each crop with its mirror image")
    ap.add_argument("--eval-only", action="store_true")
    ap.add_argument("--leave-out", nargs="*", default=["scene_detections"],
                    help="sources not to train on; default scene_detections, which --validate did not show to help "
                         "(docs/crowds.md); give the flag alone to train on every source")
    ap.add_argument("--box-jitter", type=float, default=BOX_JITTER, help="sd of the training crops' shift, in box sides")
    ap.add_argument("--scene-weight", type=float, default=SCENE_WEIGHT, help="how much more often scene faces are drawn")
    ap.add_argument("--validation-out", type=Path, default=Path("results/mask_classifier_validation.json"))
    ap.add_argument("--validate", action="store_true",
                    help="train on train minus a validation part; compare ensemble sizes and mirroring there")
    ap.add_argument("--cross-validate", action="store_true",
                    help=f"train the recipe {FOLDS} times, each without one fold of the train split; score every "
                         "train-split sample out of fold and compare inference-time views (results/mask_classifier_cv.json)")
    ap.add_argument("--workers", type=int, default=1, help="networks trained side by side (one core each)")
    ap.add_argument("--cv-out", type=Path, default=Path("results/mask_classifier_cv.json"))
    ap.add_argument("--views", choices=("all", "shipped"), default="all",
                    help="inference-time views --cross-validate scores: all of VIEWS, or the shipped one (a tenth of the time)")
    add_machine_arguments(ap, WIDTH)
    ap.add_argument("--pack", type=Path, help="write the train split as a JPEG pack (for a GPU machine) and stop")
    ap.add_argument("--data", type=Path, help="train from this pack (--pack) instead of the cache's contexts")
    ap.add_argument("--train-only", action="store_true",
                    help="train (or find cached) the final members, and the fold networks with --cross-validate, "
                         "then stop: what a GPU machine runs, from --data alone, without the datasets")
    args = ap.parse_args()
    data = None if args.train_only and args.data and not DATA_CACHE.exists() else cached_samples()
    if args.pack:
        write_pack(data, ~np.isin(data["source"], args.leave_out), args.pack)
        return 0
    train_data = with_pack(data, read_pack(args.data), args.leave_out) if args.data else data
    print({s: int((train_data["source"] == s).sum()) for s in sorted(set(train_data["source"]))})
    fit_sources = ~np.isin(train_data["source"], args.leave_out)
    if args.train_only:
        trained_networks(train_data, fit_sources, (fold_jobs(args.members) if args.cross_validate else [])
                         + final_jobs(args.members), args)
        return 0
    if args.validate:
        report = validate(train_data, args.epochs, args.members, fit_sources, args.box_jitter, args.scene_weight,
                          args.width)
        report["box_jitter"], report["scene_weight"] = args.box_jitter, args.scene_weight
        report["left_out"] = args.leave_out
        args.validation_out.parent.mkdir(parents=True, exist_ok=True)
        args.validation_out.write_text(json.dumps(report, indent=1))
        return 0
    if args.cross_validate:
        report = cross_validate(data, train_data, fit_sources, args)
        report.update(width=args.width, trained_from=str(args.data) if args.data else "cache")
        args.cv_out.parent.mkdir(parents=True, exist_ok=True)
        args.cv_out.write_text(json.dumps(report, indent=1))
        print(json.dumps({k: report[k] for k in ("accuracy", "scenes_by_size", "found_faces") if k in report}, indent=1))
        return 0
    if not args.eval_only:
        nets = trained_networks(train_data, fit_sources, final_jobs(args.members), args)
        export(ensemble(nets, mirror=not args.no_mirror))
    report = evaluate(data)
    Path("results").mkdir(exist_ok=True)
    Path("results/mask_classifier.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
