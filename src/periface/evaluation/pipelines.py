"""Embedding pipelines for evaluation, an on-disk embedding cache, and the choice of the subject's face.

A pipeline maps an RGB image to the embedding of the face the protocol is about (``None`` when no face is found).
In LFW that is the face nearest the image centre: the photos are centred on the named person.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from ..faces import Faces
from ..mask.render import renderer_fingerprint

Pipeline = Callable[[np.ndarray], "np.ndarray | None"]
CACHE_DIR = Path(".cache") / "embeddings"


def central(boxes: np.ndarray, image_size: tuple[int, int]) -> int | None:
    """Index of the box whose centre is nearest the image centre (ties to the larger box), or None."""
    if len(boxes) == 0:
        return None
    h, w = image_size
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    dist = np.linalg.norm(centres - np.array([w / 2, h / 2]), axis=1)
    size = np.sqrt(np.prod(np.clip(boxes[:, 2:] - boxes[:, :2], 1, None), axis=1))
    return int(np.argmin(dist - 0.25 * size))


def periface_pipeline(engine, *, crop: bool = False) -> Pipeline:
    def run(rgb: np.ndarray) -> np.ndarray | None:
        faces: Faces = engine.finder.find_in_crop(rgb) if crop else engine.finder.find(rgb)
        i = central(faces.boxes, rgb.shape[:2])
        if i is None:
            return None
        face = engine.describe(rgb, faces.select(i), mask=False)
        return face.embeddings[0]

    return run


def reference_pipeline(reference) -> Pipeline:
    def run(rgb: np.ndarray) -> np.ndarray | None:
        boxes = reference.boxes(rgb)
        i = central(boxes, rgb.shape[:2])
        if i is None:
            return None
        return reference.embed_boxes(rgb, boxes[i : i + 1])[0]

    return run


def pipeline_fingerprint(engine, *, routed: bool = False) -> str:
    """What a periface pipeline's vectors depend on: the face finder and the embedder's weights; for routed
    probes also the mask classifier. A retrained head or classifier gets a new cache instead of stale vectors."""
    parts = [engine.finder.fingerprint, engine.embedder.fingerprint]
    if routed:
        parts.append(engine.mask_classifier.fingerprint)
        if engine.aligns_masked_faces_three_ways:
            parts.append(engine.masked_alignments_fingerprint)
    return "|".join(parts)


def with_renderer(fingerprint: str) -> str:
    """The fingerprint of vectors computed from faces wearing rendered masks: the models' and the renderer's code."""
    return f"{fingerprint}|renderer:{renderer_fingerprint()}"


def fingerprint_tag(fingerprint: str) -> str:
    """A short file-name-safe tag for a fingerprint."""
    return hashlib.sha256(fingerprint.encode()).hexdigest()[:12]


class EmbeddingCache:
    """Embeddings on disk, keyed by (pipeline name, fingerprint, variant, image path); a rerun skips what is there.

    ``fingerprint`` names the models behind the vectors (``pipeline_fingerprint``, ``Embedder.fingerprint``): each
    one gets its own file, so vectors of a replaced model are never read again, and going back to it reuses them.
    Every ``variant`` but ``"none"`` is of faces wearing rendered masks, so those are keyed by the renderer too.
    """

    def __init__(self, pipeline: str, variant: str, fingerprint: str, root: Path = CACHE_DIR) -> None:
        if variant != "none":
            fingerprint = with_renderer(fingerprint)
        self.path = Path(root) / f"{pipeline}@{fingerprint_tag(fingerprint)}--{variant}.npz"
        self.store: dict[str, np.ndarray] = {}
        if self.path.exists():
            with np.load(self.path, allow_pickle=False) as z:
                for key, vec in zip(z["keys"], z["vectors"]):
                    self.store[str(key)] = vec

    def get(self, key: str) -> np.ndarray | None:
        return self.store.get(key)

    def put(self, key: str, vector: np.ndarray | None, dim: int) -> None:
        self.store[key] = np.full(dim, np.nan, np.float32) if vector is None else np.asarray(vector, np.float32)

    def save(self) -> None:
        """Write the cache, merged with whatever another process saved to the same file meanwhile."""
        if not self.store:
            return
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.path.exists():
                with np.load(self.path, allow_pickle=False) as z:
                    for key, vec in zip(z["keys"], z["vectors"]):
                        self.store.setdefault(str(key), vec)
            dims = {v.shape[0] for v in self.store.values()}
            if len(dims) != 1:
                raise ValueError(f"mixed embedding sizes in {self.path}: {dims}")
            tmp = self.path.with_name(self.path.stem + ".tmp.npz")
            np.savez(tmp, keys=np.array(list(self.store), dtype=str), vectors=np.stack(list(self.store.values())))
            tmp.replace(self.path)


def embed_paths(
    paths: Iterable[str],
    root: Path,
    pipeline: Pipeline,
    cache: EmbeddingCache,
    dim: int,
    transform: Callable[[np.ndarray, str], np.ndarray] | None = None,
    progress: Callable[[], None] | None = None,
) -> dict[str, np.ndarray]:
    """Embed each image (``root / path``), optionally transformed first (e.g. masked). NaN vector = no face."""
    from ..image import load_image

    out: dict[str, np.ndarray] = {}
    dirty = 0
    for path in paths:
        vec = cache.get(path)
        if vec is None:
            rgb = load_image(root / path)
            if transform is not None:
                rgb = transform(rgb, path)
            found = pipeline(rgb)
            cache.put(path, found, dim)
            vec = cache.get(path)
            dirty += 1
            if dirty % 500 == 0:
                cache.save()
        out[path] = vec
        if progress:
            progress()
    cache.save()
    return out


def stable_seed(*parts: str) -> int:
    """A per-image seed that does not depend on Python's hash randomisation."""
    return int.from_bytes(hashlib.sha256("|".join(parts).encode()).digest()[:4], "little")


def build_pipelines(names: list[str]) -> list:
    """Named pipelines: ``face_recognition`` (the reference) or ``periface-<embedder>``."""
    from ..engine import Engine
    from .reference import FaceRecognitionReference
    from .verification import NamedPipeline

    out = []
    for name in names:
        if name == "face_recognition":
            ref = FaceRecognitionReference()
            out.append(NamedPipeline(name, reference_pipeline(ref), ref.dim, ref.fingerprint))
        else:
            eng = Engine(name.removeprefix("periface-"))
            out.append(NamedPipeline(name, periface_pipeline(eng), eng.embedder.dim, pipeline_fingerprint(eng)))
    return out
