"""LFW closed- and open-set identification with masked probes.

Gallery: the first image of each of the people with 2+ images, plus every single-image person as a distractor.
Probes: those people's other images (masked with the renderer when ``mask="probe"``). Open set: a fixed tenth of
the people with 2+ images are left out of the gallery, and their probes are the non-mated searches that set the
threshold for DIR at FPIR 1%.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Callable

import numpy as np

from .metrics import cmc
from .pipelines import EmbeddingCache, embed_paths, stable_seed
from .verification import NamedPipeline, make_masker


def lfw_identification_sets(images_root: Path, max_probes: int | None = None, seed: int = 0) -> dict:
    by_person: dict[str, list[str]] = defaultdict(list)
    for p in sorted(Path(images_root).glob("*/*.jpg")):
        by_person[p.parent.name].append(f"{p.parent.name}/{p.name}")
    multi = sorted(n for n, imgs in by_person.items() if len(imgs) >= 2)
    unseen = {n for n in multi if stable_seed(n, "open-set") % 10 == 0}
    gallery = [by_person[n][0] for n in multi if n not in unseen] + [by_person[n][0] for n in by_person if len(by_person[n]) == 1]
    mated = [img for n in multi if n not in unseen for img in by_person[n][1:]]
    non_mated = [img for n in sorted(unseen) for img in by_person[n][1:]]
    rng = np.random.default_rng(seed)
    if max_probes and len(mated) > max_probes:
        mated = sorted(rng.choice(mated, size=max_probes, replace=False).tolist())
        non_mated = sorted(rng.choice(non_mated, size=min(len(non_mated), max_probes // 9), replace=False).tolist())
    return {"gallery": gallery, "mated": mated, "non_mated": non_mated}


def evaluate_identification(
    images_root: Path,
    pipelines: list[NamedPipeline],
    *,
    mask: str = "probe",
    seed: int = 0,
    max_probes: int | None = None,
    progress: Callable[[str, int], Callable[[], None]] | None = None,
) -> dict:
    sets = lfw_identification_sets(images_root, max_probes, seed)
    probes = sets["mated"] + sets["non_mated"]
    report: dict = {"mask": mask, "gallery": len(sets["gallery"]), "mated_probes": len(sets["mated"]),
                    "non_mated_probes": len(sets["non_mated"]), "pipelines": {}}
    for pl in pipelines:
        tick = progress(pl.name, len(sets["gallery"]) + len(probes)) if progress else None
        gallery_cache = EmbeddingCache(pl.name, "none", pl.fingerprint)
        g = embed_paths(sets["gallery"], images_root, pl.run, gallery_cache, pl.dim, None, tick)
        counter: dict[str, int] = {}
        probe_cache = EmbeddingCache(pl.name, f"masked-s{seed}" if mask == "probe" else "none", pl.fingerprint)
        q = embed_paths(probes, images_root, pl.run, probe_cache, pl.dim,
                        make_masker(seed, counter) if mask == "probe" else None, tick)
        report["pipelines"][pl.name] = rank_metrics(sets, g, q) | {"masks_not_rendered": counter.get("not_masked", 0)}
    return report


def rank_metrics(sets: dict, g: dict[str, np.ndarray], q: dict[str, np.ndarray]) -> dict:
    gallery_paths = [p for p in sets["gallery"] if np.isfinite(g[p]).all()]
    gx = np.stack([g[p] for p in gallery_paths])
    g_ids = np.array([p.split("/")[0] for p in gallery_paths])

    def search(paths: list[str]) -> np.ndarray:
        x = np.stack([q[p] for p in paths]) if paths else np.zeros((0, gx.shape[1]))
        ok = np.isfinite(x).all(axis=1)
        sims = np.full((len(paths), len(gx)), np.nan, np.float32)
        sims[ok] = np.nan_to_num(x[ok]) @ gx.T
        return sims

    out = metrics_from_similarities(search(sets["mated"]), search(sets["non_mated"]), g_ids,
                                    np.array([p.split("/")[0] for p in sets["mated"]]))
    return out | {"gallery_without_face": len(sets["gallery"]) - len(gallery_paths)}


def metrics_from_similarities(mated: np.ndarray, non_mated: np.ndarray, g_ids: np.ndarray, truth: np.ndarray) -> dict:
    """Rank-1/5/10 and CMC of mated searches; DIR at FPIR 1% using the non-mated searches' top scores."""
    curve = cmc(mated, g_ids, truth, max_rank=20)
    out = {"rank1": float(curve[0]), "rank5": float(curve[4]), "rank10": float(curve[9]), "cmc": curve.tolist(),
           "probes_without_face": int((~np.isfinite(mated).all(axis=1)).sum())}
    if len(non_mated):
        nm_top = np.sort(np.where(np.isfinite(non_mated), non_mated, -np.inf).max(axis=1))[::-1]
        threshold = nm_top[int(np.floor(0.01 * len(nm_top)))] + 1e-9
        top = np.where(np.isfinite(mated), mated, -np.inf)
        hit = (g_ids[top.argmax(axis=1)] == truth) & (top.max(axis=1) >= threshold)
        out |= {"dir_at_fpir_1e-2": float(hit.mean()), "open_set_threshold": float(threshold)}
    return out


def plot_cmc(report: dict, out_png: Path, title: str) -> None:
    from .report import save_line_plot

    series = [(range(1, len(r["cmc"]) + 1), r["cmc"], f"{name} (rank-1 {r['rank1']:.3f})", {"marker": "o", "ms": 3})
              for name, r in report["pipelines"].items()]
    save_line_plot(out_png, title, "rank", "identification rate", series)
