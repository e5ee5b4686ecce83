"""The FAISS index over template vectors. Never the source of truth: it is rebuilt from SQLite when stale.

On disk it is kept only as an AES-GCM encrypted snapshot tagged with the database's generation counter, so that
plaintext templates never touch the disk and a stale snapshot is detected and rebuilt.
"""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from ..privacy.crypto import TemplateCipher


class TemplateIndex:
    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids):
            self.index.add_with_ids(np.ascontiguousarray(vectors, np.float32), np.asarray(ids, np.int64))

    def remove(self, ids: np.ndarray) -> None:
        if len(ids):
            self.index.remove_ids(np.asarray(ids, np.int64))

    def search(self, query: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` (scores, template ids) for one (D,) query; fewer when the index holds fewer."""
        k = min(k, len(self))
        if k == 0:
            return np.zeros((0,), np.float32), np.zeros((0,), np.int64)
        scores, ids = self.index.search(np.ascontiguousarray(query[None], np.float32), k)
        keep = ids[0] >= 0
        return scores[0][keep], ids[0][keep]

    def save(self, path: Path, cipher: TemplateCipher, generation: int) -> None:
        blob = cipher.seal(faiss.serialize_index(self.index).tobytes(), aad=f"index:{generation}".encode())
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(blob)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path, cipher: TemplateCipher, generation: int, dim: int) -> "TemplateIndex | None":
        """The snapshot if it belongs to ``generation`` and decrypts; None means: rebuild from SQLite."""
        if not path.exists():
            return None
        try:
            raw = cipher.unseal(path.read_bytes(), aad=f"index:{generation}".encode())
        except Exception:
            return None
        out = cls(dim)
        out.index = faiss.deserialize_index(np.frombuffer(raw, dtype=np.uint8).copy())
        return out
