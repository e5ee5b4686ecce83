"""Detection and mask state on a boxed scene set (Pascal-VOC), periface against face_recognition in the same run.

``evaluate_scenes`` runs a face finder and, when given, the face_recognition reference (dlib HOG) over the scenes,
and tallies recall, precision and AP per size band and mask class (``DetectionTally``), plus the mask state periface
gives each face it found (three-way accuracy and the confusion matrix against the annotation). Numbers are given for
every image and for the images no periface model was fitted on (``FittingImages``: by file hash and by a hash of the
pixels, so a renamed or re-encoded copy of a training photo counts as seen): a run on a set that contains the
project's training photos still shows the independent figure.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np
from PIL import Image

from ..errors import ImageError
from ..faces import MASK_STATES
from ..image import load_image
from ..models import PACKAGE_DATA, file_sha256
from .detection import DetectionTally
from .metrics import BOOTSTRAP_RESAMPLES, percentile_interval, resampled_sums
from .report import pct_or_dash
from .voc import Scene

FITTING_IMAGES = PACKAGE_DATA / "crowd_fitting_images.txt"
GOAL = {"masked>=32 recall": 0.95, "false boxes >=32": 0.05}
NEAR_DUPLICATE_BITS = 10  # of 256: re-encoded copies of one photo differ by 0-2 here, different photos by 30+


def image_fingerprint(path: Path, rgb: np.ndarray) -> tuple[str, np.ndarray]:
    """(SHA-256 of the file, 256-bit difference hash of the pixels): the second still matches a copy of a photo
    that was re-encoded or saved under another name, as public scene sets often hold."""
    gray = np.asarray(Image.fromarray(rgb).convert("L").resize((17, 16), Image.BILINEAR), np.int16)
    return file_sha256(Path(path)), (gray[:, 1:] > gray[:, :-1]).ravel()


@dataclass(frozen=True)
class FittingImages:
    """The photos the crowd finder (passes, fusion, refiner) and the mask-state CNN were fitted on: the mask-scenes
    train split, as ``scripts/list_fitting_images.py`` lists them in ``data/crowd_fitting_images.txt``."""

    sha256: frozenset[str]
    dhash: np.ndarray  # (N, 256) bool

    @classmethod
    def load(cls, path: Path = FITTING_IMAGES) -> "FittingImages":
        rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
        bits = np.array([np.unpackbits(np.frombuffer(bytes.fromhex(r[1]), np.uint8)) for r in rows], bool)
        return cls(frozenset(r[0] for r in rows), bits.reshape(-1, 256))

    def holds_file(self, path: Path) -> bool:
        """Whether the image file ``path`` is one of these photos (or a copy of one)."""
        return self.contains(image_fingerprint(path, load_image(path, exif_orientation=False)))

    def contains(self, fingerprint: tuple[str, np.ndarray]) -> bool:
        sha, dhash = fingerprint
        if sha in self.sha256:
            return True
        return bool(len(self.dhash)) and int((self.dhash != dhash).sum(axis=1).min()) <= NEAR_DUPLICATE_BITS


def write_fitting_list(scenes: Iterable[Scene], path: Path = FITTING_IMAGES) -> Path:
    lines = []
    for s in scenes:
        sha, dhash = image_fingerprint(s.image, load_scene_image(s))
        lines.append(f"{sha} {np.packbits(dhash).tobytes().hex()} {s.image.name}\n")
    path.write_text("".join(lines))
    return path


@dataclass
class MaskStateTally:
    """The mask state periface gave each annotated face it found, against the annotation's."""

    truth: list[str] = field(default_factory=list)
    said: list[str] = field(default_factory=list)

    def add(self, truth: Sequence[str], said: Sequence[str]) -> None:
        pairs = [(t, s) for t, s in zip(truth, said) if t in MASK_STATES]
        self.truth += [t for t, _ in pairs]
        self.said += [s for _, s in pairs]

    def summary(self) -> dict[str, Any]:
        t, s = np.array(self.truth, object), np.array(self.said, object)
        masked_t, masked_s = t != "none", s != "none"
        return {
            "faces": int(len(t)),
            "three_way_accuracy": float(np.mean(t == s)) if len(t) else None,
            "masked_vs_none_accuracy": float(np.mean(masked_t == masked_s)) if len(t) else None,
            "set_labels_incorrect": bool(np.any(t == "incorrect")),
            "confusion": {truth: {said: int(np.sum((t == truth) & (s == said))) for said in MASK_STATES}
                          for truth in MASK_STATES if np.any(t == truth)},
        }


def load_scene_image(scene: Scene) -> np.ndarray:
    """The image in the pixel grid its boxes were drawn in: the stored grid (what labelImg and most VOC tools show),
    unless the annotation's size says the EXIF-rotated one."""
    rgb = load_image(scene.image, exif_orientation=False)
    if scene.size is not None and scene.size != (rgb.shape[1], rgb.shape[0]):
        oriented = load_image(scene.image)
        if scene.size == (oriented.shape[1], oriented.shape[0]):
            return oriented
    return rgb


def evaluate_scenes(scenes: Sequence[Scene], finder, describe: Callable | None = None, reference=None,
                    subsets_of: Callable[[Scene, np.ndarray], Sequence[str]] | None = None,
                    progress: Callable[[], None] | None = None) -> dict[str, Any]:
    """Run ``finder`` (and ``reference``: face_recognition's HOG) over ``scenes``.

    ``describe(rgb, faces)`` fills each found face's mask state (``Engine.describe``); ``subsets_of(scene, rgb)``
    names the subsets an image belongs to besides "all" (``unseen_subset``: the images periface was not fitted on).
    Returns per subset the detection summaries of both methods, periface's goal check with its bootstrap interval
    (``goal_check``) and mask-state tally, seconds per image, and the images that could not be read."""
    methods = ["periface"] + (["face_recognition"] if reference is not None else [])
    tallies: dict[tuple[str, str], DetectionTally] = {}
    masks: dict[str, MaskStateTally] = {}
    seconds = dict.fromkeys(methods, 0.0)
    names: list[str] = ["all"]
    unreadable, n = [], 0
    for scene in scenes:
        try:
            rgb = load_scene_image(scene)
        except ImageError as exc:
            unreadable.append((str(scene.image), exc.reason))
            continue
        n += 1
        subsets = ["all", *(subsets_of(scene, rgb) if subsets_of is not None else ())]
        names += [s for s in subsets if s not in names]
        t0 = time.perf_counter()
        faces = finder.find(rgb)
        seconds["periface"] += time.perf_counter() - t0
        found = {"periface": (faces.boxes, faces.scores)}
        if reference is not None:
            t0 = time.perf_counter()
            boxes = reference.boxes(rgb)
            seconds["face_recognition"] += time.perf_counter() - t0
            found["face_recognition"] = (boxes, np.ones(len(boxes)))  # HOG has no score: one operating point
        said = describe(rgb, faces).mask if describe is not None and len(faces) else []
        graded = None  # (annotated, said) for the faces periface found: the same pairs for every subset
        for subset in subsets:
            for method, (boxes, scores) in found.items():
                taken_by = tallies.setdefault((method, subset), DetectionTally()).add(
                    scene.boxes, scene.states, boxes, scores, scene.difficult)
                if method == "periface" and describe is not None and graded is None:
                    difficult = scene.difficult if scene.difficult is not None else np.zeros(len(scene.boxes), bool)
                    hit = [d for d, g in enumerate(taken_by) if g >= 0 and not difficult[g]]
                    graded = ([scene.states[taken_by[d]] for d in hit], [said[d] for d in hit])
            if graded is not None:
                masks.setdefault(subset, MaskStateTally()).add(*graded)
        if progress is not None:
            progress()
    summaries = {key: tally.summary() for key, tally in tallies.items()}
    return {
        "images": n, "unreadable_images": unreadable,
        "seconds_per_image": {m: s / max(1, n) for m, s in seconds.items()},
        "subsets": {name: {"detection": {m: summaries[(m, name)] for m in methods},
                           "goal": goal_check(summaries[("periface", name)], tallies[("periface", name)].goal_counts()),
                           "curves": {size: tallies[("periface", name)].precision_recall(size)
                                      for size in ("all", ">=32")},
                           "mask_state": masks[name].summary() if name in masks else None}
                    for name in names if ("periface", name) in tallies},
    }


def unseen_subset(fitting: FittingImages) -> Callable[[Scene, np.ndarray], list[str]]:
    """``subsets_of`` for ``evaluate_scenes``: "unseen" for an image that is not one periface was fitted on."""
    return lambda scene, rgb: [] if fitting.contains(image_fingerprint(scene.image, rgb)) else ["unseen"]


def plot_precision_recall(doc: dict[str, Any], png: Path, title: str) -> Path:
    """periface's precision-recall curves per subset and size, face_recognition's single operating point."""
    from .report import save_line_plot

    series = []
    for name, subset in doc["subsets"].items():
        for size, curve in subset["curves"].items():
            series.append((curve["recall"], curve["precision"], f"periface, {name}, faces {size}", {}))
        theirs = subset["detection"].get("face_recognition")
        if theirs:
            for size in ("all", ">=32"):
                series.append(([theirs[size]["recall"]], [theirs[size]["precision"]],
                               f"face_recognition, {name}, faces {size}", {"marker": "o", "linestyle": "none"}))
    save_line_plot(png, title, "recall", "precision", series, xlim=(0, 1))
    return png


def goal_met(recall: np.ndarray, false_share: np.ndarray) -> np.ndarray:
    """Whether the crowd issue's goal holds: masked faces >= 32 px recall >= 95% with <= 5% of boxes >= 32 px false
    (NaN, nothing to judge, counts as not met)."""
    with np.errstate(invalid="ignore"):
        return (recall >= GOAL["masked>=32 recall"]) & (false_share <= GOAL["false boxes >=32"])


def goal_interval(counts: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES, level: float = 0.95,
                  seed: int = 0) -> dict[str, Any] | None:
    """How far the goal's two numbers can be trusted on this many photos: percentile intervals over ``resamples``
    bootstrap draws of the images (``DetectionTally.goal_counts``), and the share of draws in which the goal holds
    (draws without a masked face >= 32 px are left out).

    Images, not faces, are drawn: the faces of one photo share its light, camera, crowd and annotator, so a
    face-level interval would be too narrow. None when the images hold no masked face >= 32 px."""
    counts = np.asarray(counts, np.float64).reshape(-1, 4)
    if counts[:, 0].sum() == 0:
        return None
    faces, found, boxes, false = resampled_sums(counts, resamples, seed).T
    judged = faces > 0  # a draw of only photos without a masked face >= 32 px cannot judge the goal
    recall = found[judged] / faces[judged]
    false_share = np.divide(false[judged], boxes[judged], out=np.zeros(judged.sum()), where=boxes[judged] > 0)
    return {"resamples": int(judged.sum()), "level": level, "unit": "image",
            "masked>=32 recall": percentile_interval(recall, level),
            "false boxes >=32": percentile_interval(false_share, level),
            "share_of_resamples_meeting_goal": float(goal_met(recall, false_share).mean())}


def goal_check(detection: dict[str, Any], counts: np.ndarray | None = None) -> dict[str, Any]:
    """The crowd issue's goal on one subset's periface summary, and, given its per-image ``counts``
    (``DetectionTally.goal_counts``), the bootstrap interval of both numbers (``goal_interval``)."""
    masked, big = detection["masked>=32"], detection[">=32"]
    false_share = big["false_boxes"] / big["detections"] if big["detections"] else None
    met = goal_met(np.float64(np.nan if masked["recall"] is None else masked["recall"]),
                   np.float64(np.nan if false_share is None else false_share))
    out = {"masked>=32 recall": masked["recall"], "false boxes >=32": false_share, "met": bool(met), "goal": GOAL}
    if counts is not None:
        out["interval"] = goal_interval(counts)
    return out


def goal_sentence(goal: dict[str, Any]) -> str:
    """The goal's verdict with its numbers and, when there is one, how sure they are on this many photos."""
    text = (f"goal (masked >= 32 px recall >= 95%, <= 5% false boxes >= 32 px) {'met' if goal['met'] else 'not met'}: "
            f"recall {pct_or_dash(goal['masked>=32 recall'])}, false boxes {pct_or_dash(goal['false boxes >=32'])}")
    interval = goal.get("interval")
    if interval:
        (r0, r1), (f0, f1) = interval["masked>=32 recall"], interval["false boxes >=32"]
        text += (f" ({interval['level']:.0%} intervals over {interval['resamples']} resamples of the images: recall "
                 f"{pct_or_dash(r0)}-{pct_or_dash(r1)}, false {pct_or_dash(f0)}-{pct_or_dash(f1)}; the goal holds in "
                 f"{interval['share_of_resamples_meeting_goal']:.0%} of them)")
    return text
