"""Templates encrypted at rest with AES-256-GCM. The key lives outside the gallery: in a file or an env variable."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ..errors import EncryptionKeyError

KEY_ENV = "PERIFACE_KEY"
KEY_FILE_ENV = "PERIFACE_KEY_FILE"
_NONCE = 12


def generate_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def encode_key(key: bytes) -> str:
    return base64.urlsafe_b64encode(key).decode("ascii")


def decode_key(text: str) -> bytes:
    try:
        key = base64.urlsafe_b64decode(text.strip().encode("ascii"))
    except Exception:
        raise EncryptionKeyError("key is not valid base64") from None
    if len(key) != 32:
        raise EncryptionKeyError(f"key must be 32 bytes (AES-256), got {len(key)}")
    return key


def default_key_file(gallery_dir: Path) -> Path:
    """Beside the gallery, never inside it: ``DIR`` -> ``DIR.key``."""
    gallery_dir = Path(gallery_dir).resolve()
    return gallery_dir.with_name(gallery_dir.name + ".key")


def load_or_create_key(gallery_dir: Path, *, create: bool) -> bytes:
    """The key from ``PERIFACE_KEY``, else the file ``PERIFACE_KEY_FILE``, else ``DIR.key`` beside the gallery.

    A key file inside the gallery directory is refused: whoever copies the gallery must not get the key with it.
    """
    if os.environ.get(KEY_ENV):
        return decode_key(os.environ[KEY_ENV])
    path = Path(os.environ.get(KEY_FILE_ENV) or default_key_file(gallery_dir)).resolve()
    if Path(gallery_dir).resolve() in path.parents:
        raise EncryptionKeyError(f"the key file {path} must not be inside the gallery directory")
    if path.exists():
        return decode_key(path.read_text())
    if not create:
        raise EncryptionKeyError(f"no template key: set {KEY_ENV} or {KEY_FILE_ENV}, or restore {path}")
    key = generate_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(encode_key(key) + "\n")
    return key


class TemplateCipher:
    """Seals float32 vectors. ``aad`` binds a ciphertext to its row, so blobs cannot be swapped between rows."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    def seal(self, data: bytes, aad: bytes) -> bytes:
        nonce = secrets.token_bytes(_NONCE)
        return nonce + self._aead.encrypt(nonce, data, aad)

    def unseal(self, blob: bytes, aad: bytes) -> bytes:
        try:
            return self._aead.decrypt(blob[:_NONCE], blob[_NONCE:], aad)
        except InvalidTag:
            raise EncryptionKeyError("data cannot be decrypted: wrong key or tampered row") from None

    def encrypt(self, vector: np.ndarray, aad: bytes) -> bytes:
        return self.seal(np.asarray(vector, dtype=np.float32).tobytes(), aad)

    def decrypt(self, blob: bytes, aad: bytes) -> np.ndarray:
        return np.frombuffer(self.unseal(blob, aad), dtype=np.float32).copy()
