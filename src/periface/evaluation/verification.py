"""Pair verification protocol (LFW View-2 format or any list in it): accuracy, TAR at FAR, EER, ROC.

Each pipeline embeds every image once (cached on disk); with ``mask="probe"`` the second image of every pair is
replaced by a masked rendering of it, with ``mask="both"`` both are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .lfw import Pair, pair_labels, read_pairs
from .metrics import roc, verification_summary
from .pipelines import EmbeddingCache, Pipeline, embed_paths, stable_seed

Masker = Callable[[np.ndarray, str], np.ndarray]


@dataclass
class NamedPipeline:
    name: str
    run: Pipeline
    dim: int
    fingerprint: str  # see pipelines.pipeline_fingerprint


def make_masker(seed: int, counter: dict[str, int] | None = None) -> Masker:
    """Render a random mask, worn correctly (nose and mouth covered), on each image, seeded by (image path, seed).

    Unmasked if no face mesh is found (counted). Masks worn under the nose or on the chin would leave most of the
    face visible and flatter every method, so the evaluation uses full coverage only.
    """
    from ..mask.render import add_mask

    def mask(rgb: np.ndarray, path: str) -> np.ndarray:
        result = add_mask(rgb, seed=stable_seed(path, str(seed)), coverage="full")
        if result is None:
            if counter is not None:
                counter["not_masked"] = counter.get("not_masked", 0) + 1
            return rgb
        return result.image

    return mask


def pair_scores(pairs: list[Pair], first: dict[str, np.ndarray], second: dict[str, np.ndarray]) -> np.ndarray:
    return np.array([float(np.dot(first[p.a], second[p.b])) for p in pairs])  # NaN when a face is missing


def evaluate_pairs(
    pairs_file: Path,
    images_root: Path,
    pipelines: list[NamedPipeline],
    *,
    mask: str = "none",
    seed: int = 0,
    progress: Callable[[str, int], Callable[[], None]] | None = None,
) -> dict:
    pairs = read_pairs(pairs_file)
    same, folds = pair_labels(pairs)
    firsts = sorted({p.a for p in pairs})
    seconds = sorted({p.b for p in pairs})
    report: dict = {"pairs_file": str(pairs_file), "pairs": len(pairs), "mask": mask, "seed": seed, "pipelines": {}}
    for pl in pipelines:
        counter: dict[str, int] = {}
        plain_cache = EmbeddingCache(pl.name, "none", pl.fingerprint)
        masked_cache = EmbeddingCache(pl.name, f"masked-s{seed}", pl.fingerprint)
        masker = make_masker(seed, counter) if mask != "none" else None
        tick = progress(pl.name, len(firsts) + len(seconds)) if progress else None
        a_emb = embed_paths(firsts, images_root, pl.run, masked_cache if mask == "both" else plain_cache, pl.dim,
                            masker if mask == "both" else None, tick)
        b_emb = embed_paths(seconds, images_root, pl.run, masked_cache if mask != "none" else plain_cache, pl.dim,
                            masker, tick)
        scores = pair_scores(pairs, a_emb, b_emb)
        missing_a = {p for p, v in a_emb.items() if not np.isfinite(v).all()}
        missing_b = {p for p, v in b_emb.items() if not np.isfinite(v).all()}
        far, tar = roc(scores, same)
        report["pipelines"][pl.name] = {
            **verification_summary(scores, same, folds),
            "images_without_face": len(missing_a | missing_b),
            "pairs_with_missing_face": int(np.sum(~np.isfinite(scores))),
            "masks_not_rendered": counter.get("not_masked", 0),
            "roc": {"far": far[:: max(1, len(far) // 400)].tolist(), "tar": tar[:: max(1, len(tar) // 400)].tolist()},
            "_scores": scores, "_same": same,
        }
    return report


def plot_roc(report: dict, out_png: Path, title: str) -> None:
    from .report import save_line_plot

    series = []
    for name, r in report["pipelines"].items():
        far, tar = roc(r["_scores"], r["_same"])
        series.append((np.maximum(far, 1e-4), tar, f"{name} (acc {r['accuracy']:.3f})", {}))
    save_line_plot(out_png, title, "false accept rate", "true accept rate", series, xlog=True, xlim=(1e-3, 1))


def public(report: dict) -> dict:
    """The report without its raw score arrays (for JSON)."""
    return {**report, "pipelines": {k: {kk: vv for kk, vv in v.items() if not kk.startswith("_")}
                                    for k, v in report["pipelines"].items()}}
