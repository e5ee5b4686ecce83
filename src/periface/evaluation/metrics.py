"""Verification and identification metrics. Scores: higher = more alike; NaN = no face found (counts as a miss).
Also the bootstrap that puts an interval on a rate measured on a few hundred photos (``resampled_sums``)."""

from __future__ import annotations

import numpy as np


def _clean(scores: np.ndarray) -> np.ndarray:
    # A pair where a face was not found can never be accepted.
    return np.where(np.isfinite(scores), scores, -np.inf)


def best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    s = _clean(scores)
    finite = np.unique(s[np.isfinite(s)])
    if finite.size == 0:
        return 0.0
    candidates = np.concatenate([[finite[0] - 1e-6], (finite[:-1] + finite[1:]) / 2, [finite[-1] + 1e-6]])
    acc = [(np.mean((s >= t) == same)) for t in candidates]
    return float(candidates[int(np.argmax(acc))])


def kfold_accuracy(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> tuple[float, float]:
    """LFW protocol: each fold judged at the threshold that is best on the other folds. Mean and std."""
    accs = []
    s = _clean(scores)
    for f in np.unique(folds):
        test = folds == f
        t = best_threshold(s[~test], same[~test])
        accs.append(np.mean((s[test] >= t) == same[test]))
    return float(np.mean(accs)), float(np.std(accs))


def tar_at_far(scores: np.ndarray, same: np.ndarray, far: float) -> tuple[float, float]:
    """True accept rate at the threshold where a share ``far`` of impostor pairs is accepted; and that threshold."""
    s = _clean(scores)
    impostor = np.sort(s[~same])[::-1]
    k = int(np.floor(far * len(impostor)))
    threshold = impostor[k] + 1e-9 if k < len(impostor) else -np.inf
    return float(np.mean(s[same] >= threshold)), float(threshold)


def roc(scores: np.ndarray, same: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False accept and true accept rates over all thresholds."""
    s = _clean(scores)
    order = np.argsort(-s, kind="stable")
    labels = same[order]
    tar = np.cumsum(labels) / max(1, labels.sum())
    far = np.cumsum(~labels) / max(1, (~labels).sum())
    return far, tar


def eer(scores: np.ndarray, same: np.ndarray) -> float:
    far, tar = roc(scores, same)
    frr = 1 - tar
    i = int(np.argmin(np.abs(far - frr)))
    return float((far[i] + frr[i]) / 2)


def cmc(similarities: np.ndarray, gallery_labels: np.ndarray, probe_labels: np.ndarray, max_rank: int = 20) -> np.ndarray:
    """Share of probes whose true identity is within the top r, r = 1..max_rank. NaN rows (no face) are misses."""
    hits = np.zeros(max_rank)
    for row, truth in zip(similarities, probe_labels):
        if not np.all(np.isfinite(row)):
            continue
        ranked_ids = gallery_labels[np.argsort(-row)]
        pos = np.flatnonzero(ranked_ids == truth)
        if pos.size and pos[0] < max_rank:
            hits[pos[0]:] += 1
    return hits / max(1, len(probe_labels))


def verification_summary(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> dict:
    """The numbers every verification report gives: 10-fold accuracy, TAR at FAR 1e-2 and 1e-3, EER."""
    acc, std = kfold_accuracy(scores, same, folds)
    return {"accuracy": acc, "accuracy_std": std, "tar_at_far_1e-2": tar_at_far(scores, same, 1e-2)[0],
            "tar_at_far_1e-3": tar_at_far(scores, same, 1e-3)[0], "eer": eer(scores, same)}


BOOTSTRAP_RESAMPLES = 2000


def resampled_sums(counts: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> np.ndarray:
    """(resamples, K) column sums of ``counts`` (G, K) over bootstrap draws of its G rows with replacement.

    A row is one photo (its faces found, its faces, ...): faces of one photo share its light, camera and annotator,
    so photos, not faces, are what is drawn. Seeded, so a report is reproducible."""
    counts = np.asarray(counts, np.float64)
    n = len(counts)
    weights = np.random.default_rng(seed).multinomial(n, np.full(n, 1.0 / n), size=resamples)
    return weights @ counts


def percentile_interval(values: np.ndarray, level: float = 0.95) -> list[float]:
    """The central ``level`` interval of bootstrap ``values``."""
    return np.percentile(values, [100 * (1 - level) / 2, 100 * (1 + level) / 2]).tolist()
