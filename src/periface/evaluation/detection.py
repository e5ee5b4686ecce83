"""Detection quality on boxed scenes: recall, precision and average precision at IoU 0.5, per mask class and size.

Matching is Pascal-VOC's: detections sorted by score, each takes the best-overlapping unmatched ground-truth box
with IoU >= 0.5, else it is a false box. Size bands use the box's shorter side: ``small`` < 32 px, ``medium``
32-96 px, ``large`` > 96 px. A band's numbers count its ground-truth faces, the detections that matched them, and
the false boxes whose own size falls in the band (as COCO's area ranges do), so AP stays within [0, 1].

>>> acc = DetectionTally()
>>> acc.add(gt_boxes, gt_states, det_boxes, det_scores)        # doctest: +SKIP
>>> acc.summary()["masked>=32"]["recall"]                        # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..detect.base import iou_matrix

BANDS = {"small": (0, 32), "medium": (32, 96), "large": (96, 1e9)}
LARGER_BANDS = ["medium", "large"]  # faces >= 32 px: the band the detection goal is set on


def band_of(boxes: np.ndarray) -> np.ndarray:
    side = np.min(boxes[:, 2:] - boxes[:, :2], axis=1) if len(boxes) else np.zeros((0,))
    return np.where(side < 32, "small", np.where(side <= 96, "medium", "large"))


def assign(gt: np.ndarray, det: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.5) -> np.ndarray:
    """(D,) index of the ground-truth box each detection takes, -1 for a false box: greedy VOC matching, best score
    first, each detection taking the best-overlapping ground truth not yet taken."""
    taken_by = np.full(len(det), -1, np.int64)
    if len(gt) == 0 or len(det) == 0:
        return taken_by
    iou = iou_matrix(det, gt)
    taken = np.zeros(len(gt), bool)
    for d in np.argsort(-scores):
        cand = np.where(taken, -1.0, iou[d])
        g = int(np.argmax(cand))
        if cand[g] >= iou_threshold:
            taken[g] = True
            taken_by[d] = g
    return taken_by


def match(gt: np.ndarray, det: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """(gt_hit (G,) bool, det_tp (D,) bool): greedy VOC matching, best score first."""
    taken_by = assign(gt, det, scores, iou_threshold)
    gt_hit = np.zeros(len(gt), bool)
    gt_hit[taken_by[taken_by >= 0]] = True
    return gt_hit, taken_by >= 0


def ranked_curve(scores: np.ndarray, tp: np.ndarray, n_gt: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Detections ordered by score (highest first), and recall and precision after each of them."""
    order = np.argsort(-scores)
    ctp = np.cumsum(tp[order].astype(np.float64))
    return order, ctp / max(n_gt, 1), ctp / np.arange(1, len(ctp) + 1)


def average_precision(scores: np.ndarray, tp: np.ndarray, n_gt: int) -> float:
    """Area under the interpolated precision-recall curve (all points, as VOC 2010+)."""
    if n_gt == 0:
        return float("nan")
    _, recall, precision = ranked_curve(scores, tp, n_gt)
    r = np.concatenate([[0.0], recall, [recall[-1] if len(recall) else 0.0]])
    p = np.concatenate([[1.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    return float(np.sum((r[1:] - r[:-1]) * p[1:]))


@dataclass
class DetectionTally:
    """Accumulates matches over images; ``summary()`` gives the tables."""

    gt_state: list[np.ndarray] = field(default_factory=list)
    gt_band: list[np.ndarray] = field(default_factory=list)
    gt_hit: list[np.ndarray] = field(default_factory=list)
    det_score: list[np.ndarray] = field(default_factory=list)
    det_tp: list[np.ndarray] = field(default_factory=list)
    det_band: list[np.ndarray] = field(default_factory=list)
    det_state: list[np.ndarray] = field(default_factory=list)  # state of the matched ground truth, "" if false
    det_gt_band: list[np.ndarray] = field(default_factory=list)  # band of the matched ground truth, "" if false

    def add(self, gt: np.ndarray, states: list[str], det: np.ndarray, scores: np.ndarray,
            difficult: np.ndarray | None = None) -> np.ndarray:
        """Adds one image; returns the (D,) index into ``gt`` of the face each detection found, -1 for a false box.
        ``difficult`` faces (VOC's flag) count neither as found nor as missed, and a detection of one is left out."""
        gt = np.asarray(gt, np.float32).reshape(-1, 4)
        det = np.asarray(det, np.float32).reshape(-1, 4)
        scores = np.asarray(scores, np.float32).reshape(-1)
        taken_by = assign(gt, det, scores)
        counted = np.ones(len(gt), bool) if difficult is None else ~np.asarray(difficult, bool).reshape(-1)
        det_counted = np.array([g < 0 or counted[g] for g in taken_by], bool)
        hit = np.zeros(len(gt), bool)
        hit[taken_by[taken_by >= 0]] = True
        gt_bands = band_of(gt)
        mine = taken_by[det_counted]
        self.gt_state.append(np.array(states, dtype=object)[counted])
        self.gt_band.append(gt_bands[counted])
        self.gt_hit.append(hit[counted])
        self.det_score.append(scores[det_counted])
        self.det_tp.append(mine >= 0)
        self.det_band.append(band_of(det[det_counted]))
        # Which ground truth each true detection took, to know its class and size band.
        self.det_state.append(np.array([states[g] if g >= 0 else "" for g in mine], dtype=object))
        self.det_gt_band.append(np.array([gt_bands[g] if g >= 0 else "" for g in mine], dtype=object))
        return taken_by

    def precision_recall(self, sizes: str = "all", points: int = 200) -> dict[str, list[float]]:
        """The precision-recall curve over score thresholds, for every face (``sizes="all"``) or faces >= 32 px
        (``">=32"``), at most ``points`` points: what the operating threshold trades."""
        gb, ds, dt = self._cat("gt_band"), self._cat("det_score"), self._cat("det_tp").astype(bool)
        if sizes == ">=32":
            keep = np.isin(self._detection_bands(), LARGER_BANDS)
            ds, dt, n_gt = ds[keep], dt[keep], int(np.isin(gb, LARGER_BANDS).sum())
        else:
            n_gt = len(gb)
        order, recall, precision = ranked_curve(ds, dt, n_gt)
        pick = np.unique(np.linspace(0, len(ds) - 1, min(points, len(ds))).astype(int)) if len(ds) else []
        return {"recall": recall[pick].round(4).tolist(), "precision": precision[pick].round(4).tolist(),
                "score": ds[order][pick].round(4).tolist()}

    def goal_counts(self) -> np.ndarray:
        """(images, 4) per image: masked faces >= 32 px, how many of them were found, boxes >= 32 px, and how many of
        those are false; the counts the detection goal is judged on, kept per image so that it can be resampled."""
        rows = []
        for gs, gb, gh, tp, gt_band, own_band in zip(self.gt_state, self.gt_band, self.gt_hit, self.det_tp,
                                                     self.det_gt_band, self.det_band):
            masked = np.isin(gs, ["correct", "incorrect"]) & np.isin(gb, LARGER_BANDS)
            big = np.isin(np.where(tp, gt_band, own_band), LARGER_BANDS)
            rows.append([masked.sum(), (masked & gh).sum(), big.sum(), (big & ~tp).sum()])
        return np.array(rows, np.int64).reshape(-1, 4)

    def _detection_bands(self) -> np.ndarray:
        """Per detection, the size band it counts in: its face's band when true, its own box's band when false."""
        return np.where(self._cat("det_tp").astype(bool), self._cat("det_gt_band"), self._cat("det_band"))

    def _cat(self, name: str) -> np.ndarray:
        parts = getattr(self, name)
        return np.concatenate(parts) if parts else np.zeros((0,))

    def summary(self) -> dict[str, Any]:
        gs, gb, gh = self._cat("gt_state"), self._cat("gt_band"), self._cat("gt_hit").astype(bool)
        ds, dt, db = self._cat("det_score"), self._cat("det_tp").astype(bool), self._detection_bands()
        out: dict[str, Any] = {"images": len(self.gt_hit), "faces": int(len(gs)), "detections": int(len(ds))}

        def row(gsel: np.ndarray, dsel: np.ndarray | None) -> dict[str, Any]:
            r: dict[str, Any] = {"faces": int(gsel.sum()), "found": int(gh[gsel].sum()),
                                 "recall": _ratio(gh[gsel].sum(), gsel.sum())}
            if dsel is not None:
                r["detections"] = int(dsel.sum())
                r["false_boxes"] = int((~dt[dsel]).sum())
                r["precision"] = _ratio(dt[dsel].sum(), dsel.sum())
                # AP restricted to a band: ground truth of the band, detections of the band.
                r["ap"] = average_precision(ds[dsel], dt[dsel], int(gsel.sum()))
            return r

        every_det = np.ones(len(ds), bool)
        out["all"] = row(np.ones(len(gs), bool), every_det)
        for band in BANDS:
            out[band] = row(gb == band, db == band)
        out[">=32"] = row(np.isin(gb, LARGER_BANDS), np.isin(db, LARGER_BANDS))
        masked = np.isin(gs, ["correct", "incorrect"])
        out["masked>=32"] = row(masked & np.isin(gb, LARGER_BANDS), None)
        out["masked>=32"]["precision_of_boxes>=32"] = out[">=32"]["precision"]
        out["per_class"] = {}
        for state in ("correct", "incorrect", "none"):
            sel = gs == state
            per = {"all": row(sel, None)}
            for band in BANDS:
                per[band] = row(sel & (gb == band), None)
            out["per_class"][state] = per
        return out


def _ratio(a: float, b: float) -> float | None:
    return float(a) / float(b) if b else None


def lowest_threshold_keeping_precision(summary_at: Callable[[float], dict], target: float, band: str = ">=32") -> float:
    """The lowest score threshold, scanned down from 0.98 in steps of 0.01, at which the detections of ``band``
    keep at least ``target`` precision (``summary_at(threshold)`` gives a ``DetectionTally.summary()``); 0.99 when
    even 0.98 misses it. The scan stops at the first threshold that misses: lower ones only add boxes."""
    best = 0.99
    for thr in np.arange(0.98, 0.05, -0.01):
        if (summary_at(float(thr))[band]["precision"] or 1.0) < target:
            break
        best = float(thr)
    return best
