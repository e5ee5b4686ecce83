"""Masked recognition, each method alone and combined, on the same pairs and the same embeddings.

For a pair list (LFW format) the second image of each pair is the masked probe (rendered, worn correctly); the
first is the unmasked reference. Methods, all on one backbone:
  plain        cosine(probe, reference)
  adapter      cosine(adapter(probe), reference)
  masked_refs  max over k masked renders of the reference of cosine(probe, render)
  fused        the shipped masked path: weighted masked_refs + adapter (weight chosen on View-1)
  routed       what the product does: fused when the mask classifier says the probe wears a mask, else plain
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from ..masked import fuse, masked_reference_scores
from .lfw import pair_labels, read_pairs
from .metrics import verification_summary
from .pipelines import EmbeddingCache, central, embed_paths, pipeline_fingerprint, stable_seed
from .verification import make_masker


def reference_variants_pipeline(engine, k: int):
    """Image -> flattened (k, D) embeddings of its central face wearing k rendered masks (NaN when none)."""

    def run(rgb: np.ndarray, path: str = "") -> np.ndarray | None:
        faces = engine.finder.find(rgb)
        i = central(faces.boxes, rgb.shape[:2])
        if i is None:
            return None
        face = faces.select(i)
        refs = engine.masked_references(rgb, face, seed=stable_seed(path, "reference"))
        out = np.full((k, engine.embedder.dim), np.nan, np.float32)
        out[: len(refs)] = refs
        return out.ravel()

    return run


def embed_reference_variants(paths: list[str], images_root: Path, engine, name: str,
                             tick: Callable[[], None] | None = None) -> dict[str, np.ndarray]:
    """(k, D) masked-reference embeddings per image, cached under ``<name>--masked-refs-k<k>`` (NaN rows: no render)."""
    from ..image import load_image

    d, k = engine.embedder.dim, engine.masked_params.variants
    run = reference_variants_pipeline(engine, k)
    cache = EmbeddingCache(name, f"masked-refs-k{k}", pipeline_fingerprint(engine))
    refs, fresh = {}, 0
    for p in paths:
        v = cache.get(p)
        if v is None:
            cache.put(p, run(load_image(images_root / p), p), k * d)
            v = cache.get(p)
            fresh += 1
            if fresh % 500 == 0:
                cache.save()
        refs[p] = v.reshape(k, d)
        if tick:
            tick()
    cache.save()
    return refs


def probe_pipeline(engine):
    """Image -> [embedding of the central face, P(mask)] so that routing can be measured on the same run."""

    def run(rgb: np.ndarray) -> np.ndarray | None:
        faces = engine.finder.find(rgb)
        i = central(faces.boxes, rgb.shape[:2])
        if i is None:
            return None
        face = engine.describe(rgb, faces.select(i))
        routed = 1.0 if face.mask[0] != "none" else 0.0
        return np.concatenate([face.embeddings[0], [routed]]).astype(np.float32)

    return run


def routed_masked_probes(
    paths: list[str], images_root: Path, engine, name: str, *, seed: int = 0, counter: dict[str, int] | None = None,
    progress: Callable[[], None] | None = None,
) -> dict[str, np.ndarray]:
    """Each image wearing a rendered mask (seeded by path and ``seed``), embedded as the product embeds a probe
    (mask state, and for masked faces the engine's extra alignments): (D + 1,) vectors, the last entry 1.0 when the
    probe was routed as masked. Cached per engine fingerprint."""
    cache = EmbeddingCache(name, f"masked-probe-routed-s{seed}", pipeline_fingerprint(engine, routed=True))
    return embed_paths(paths, images_root, probe_pipeline(engine), cache, engine.embedder.dim + 1,
                       make_masker(seed, counter), progress)


def evaluate_masked_methods(
    pairs_file: Path, images_root: Path, engine, name: str, *, seed: int = 0,
    progress: Callable[[str, int], Callable[[], None]] | None = None,
) -> dict:
    pairs = read_pairs(pairs_file)
    same, folds = pair_labels(pairs)
    firsts = sorted({p.a for p in pairs})
    seconds = sorted({p.b for p in pairs})
    d, k = engine.embedder.dim, engine.masked_params.variants
    from .pipelines import periface_pipeline

    tick = progress(f"{name}: references", 2 * len(firsts)) if progress else None
    plain_cache = EmbeddingCache(name, "none", pipeline_fingerprint(engine))
    plain = embed_paths(firsts, images_root, periface_pipeline(engine), plain_cache, d, None, tick)
    refs = embed_reference_variants(firsts, images_root, engine, name, tick)
    tick = progress(f"{name}: masked probes", len(seconds)) if progress else None
    counter: dict[str, int] = {}
    probes = routed_masked_probes(seconds, images_root, engine, name, seed=seed, counter=counter, progress=tick)
    a = np.stack([plain[p.a] for p in pairs])
    r = np.stack([refs[p.a] for p in pairs])
    b = np.stack([probes[p.b][:d] for p in pairs])
    routed = np.array([probes[p.b][d] for p in pairs]) > 0.5
    adapted = engine.adapt(np.nan_to_num(b))
    adapted[~np.isfinite(b).all(1)] = np.nan
    s_plain = np.einsum("ij,ij->i", a, b)
    s_adapter = np.einsum("ij,ij->i", a, adapted)
    with np.errstate(invalid="ignore"):
        s_refs = np.nanmax(np.einsum("ikj,ij->ik", r, b), axis=1) if k else np.full(len(pairs), np.nan)
    w = engine.masked_params.weight_masked_refs
    s_fused = fuse(s_adapter, s_refs, w)
    s_routed = np.where(routed, s_fused, s_plain)
    # a reference that Face Mesh could not put a mask on has no renders: it is compared plainly, as in fuse()
    s_refs = np.where(np.isfinite(s_refs), s_refs, s_plain)
    report = {"pairs_file": str(pairs_file), "pairs": len(pairs), "backbone": engine.embedder.name, "variants": k,
              "weight_masked_refs": w, "probes_routed_to_masked_path": float(routed[np.isfinite(b).all(1)].mean()),
              "masks_not_rendered": counter.get("not_masked", 0), "methods": {}}
    for method, s in (("plain", s_plain), ("adapter", s_adapter), ("masked_refs", s_refs), ("fused", s_fused),
                      ("routed", s_routed)):
        report["methods"][method] = verification_summary(s, same, folds) | {
            "pairs_with_missing_face": int(np.sum(~np.isfinite(s)))}
    return report


def evaluate_identification_methods(
    images_root: Path, engine, name: str, *, seed: int = 0, max_probes: int | None = None,
    progress: Callable[[str, int], Callable[[], None]] | None = None,
) -> dict:
    """LFW identification with masked probes (protocol of ``identification.py``), each masked-path method."""
    from .identification import lfw_identification_sets, metrics_from_similarities
    from .pipelines import periface_pipeline

    sets = lfw_identification_sets(images_root, max_probes, seed)
    d = engine.embedder.dim
    tick = progress(f"{name}: gallery", 2 * len(sets["gallery"])) if progress else None
    gallery_cache = EmbeddingCache(name, "none", pipeline_fingerprint(engine))
    g = embed_paths(sets["gallery"], images_root, periface_pipeline(engine), gallery_cache, d, None, tick)
    refs = embed_reference_variants(sets["gallery"], images_root, engine, name, tick)
    probes_all = sets["mated"] + sets["non_mated"]
    tick = progress(f"{name}: masked probes", len(probes_all)) if progress else None
    counter: dict[str, int] = {}
    probe_cache = EmbeddingCache(name, f"masked-probe-routed-s{seed}", pipeline_fingerprint(engine, routed=True))
    q = embed_paths(probes_all, images_root, probe_pipeline(engine), probe_cache,
                    d + 1, make_masker(seed, counter), tick)
    keep = [p for p in sets["gallery"] if np.isfinite(g[p]).all()]
    gx = np.stack([g[p] for p in keep])
    rx = np.stack([refs[p] for p in keep])  # (G, k, D), NaN rows where a render failed
    g_ids = np.array([p.split("/")[0] for p in keep])

    def sims(paths: list[str]) -> dict[str, np.ndarray]:
        return method_similarities(engine, np.stack([q[p] for p in paths]) if paths else np.zeros((0, d + 1)), gx, rx)

    mated, non_mated = sims(sets["mated"]), sims(sets["non_mated"])
    truth = np.array([p.split("/")[0] for p in sets["mated"]])
    report = {"gallery": len(sets["gallery"]), "mated_probes": len(sets["mated"]), "non_mated_probes": len(sets["non_mated"]),
              "backbone": engine.embedder.name, "masks_not_rendered": counter.get("not_masked", 0), "methods": {}}
    for m in mated:
        report["methods"][m] = metrics_from_similarities(mated[m], non_mated[m], g_ids, truth)
    return report


METHODS = ("plain", "adapter", "masked_refs", "fused", "routed")


def method_similarities(engine, probes: np.ndarray, gx: np.ndarray, rx: np.ndarray) -> dict[str, np.ndarray]:
    """(P, G) similarities of probes against a gallery for each masked-path method.

    ``probes``: (P, D + 1) rows of ``probe_pipeline`` (embedding, then 1 when routed to the masked path; NaN when no
    face); ``gx``: (G, D) plain gallery templates; ``rx``: (G, k, D) their masked renders (NaN rows: no render).
    """
    d = gx.shape[1]
    if not len(probes):
        return {m: np.zeros((0, len(gx))) for m in METHODS}
    ok = np.isfinite(probes).all(axis=1)
    e, routed = np.nan_to_num(probes[:, :d]), probes[:, d] > 0.5
    plain = e @ gx.T
    adapter = engine.adapt(e) @ gx.T
    masked_refs = masked_reference_scores(e, rx)
    fused = fuse(adapter, masked_refs, engine.masked_params.weight_masked_refs)
    routed_s = np.where(routed[:, None], fused, plain)
    masked_refs = np.where(np.isfinite(masked_refs), masked_refs, plain)  # no renders: compared plainly
    out = {"plain": plain, "adapter": adapter, "masked_refs": masked_refs, "fused": fused, "routed": routed_s}
    return {m: np.where(ok[:, None], v, np.nan) for m, v in out.items()}


def evaluate_fusion_masked(pairs_file: Path, images_root: Path, *, seed: int = 0,
                           progress: Callable[[str, int], Callable[[], None]] | None = None) -> dict:
    """``Engine("fusion")`` (SFace + dlib, weights from ``data/fusion.json``) on masked probes, as the product runs
    it: references unmasked, probes masked, described with their mask state and, when masked, the extra
    alignments. The score is the fused cosine either way; a masked probe is judged by the masked calibration. The
    report gives the share of mismatched pairs above each shipped threshold, probe masked and unmasked."""
    from ..engine import Engine
    from .pipelines import periface_pipeline

    engine, name = Engine("fusion"), "periface-fusion"
    pairs = read_pairs(pairs_file)
    same, folds = pair_labels(pairs)
    firsts, seconds = sorted({p.a for p in pairs}), sorted({p.b for p in pairs})
    d = engine.embedder.dim
    everything = sorted(set(firsts) | set(seconds))
    tick = progress(f"{name}: unmasked", len(everything)) if progress else None
    plain = embed_paths(everything, images_root, periface_pipeline(engine),
                        EmbeddingCache(name, "none", pipeline_fingerprint(engine)), d, None, tick)
    tick = progress(f"{name}: masked probes", len(seconds)) if progress else None
    probes = routed_masked_probes(seconds, images_root, engine, name, seed=seed, progress=tick)
    a = np.stack([plain[p.a] for p in pairs])
    b = np.stack([probes[p.b][:d] for p in pairs])
    s = np.einsum("ij,ij->i", a, b)
    s_unmasked = np.einsum("ij,ij->i", a, np.stack([plain[p.b] for p in pairs]))
    impostor = ~same & np.isfinite(s) & np.isfinite(s_unmasked)
    masked_cal = engine.masked_calibration if engine.has_masked_path else engine.calibration
    above = {}
    for far in (1e-2, 1e-3, 1e-4):
        thr, thr_masked = engine.calibration.threshold(far), masked_cal.threshold(far)
        above[f"{far:.0e}"] = {"threshold": thr, "masked_threshold": thr_masked,
                               "masked_probe": float(np.mean(s[impostor] >= thr_masked)),
                               "unmasked": float(np.mean(s_unmasked[impostor] >= thr))}
    return verification_summary(s, same, folds) | {
        "pairs_missing_an_embedding": int(np.sum(~np.isfinite(s))),
        "weights": [float(w) for w in engine.embedder.weights],
        "impostor_pairs": int(impostor.sum()), "impostors_above_shipped_thresholds": above}
