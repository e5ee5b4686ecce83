"""One typed settings object. Values come from arguments or ``PERIFACE_*`` environment variables."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PERIFACE_", frozen=True)

    max_pixels: int = Field(40_000_000, description="images above this many pixels are refused before decoding")
    max_bytes: int = Field(50 * 1024 * 1024, description="largest accepted encoded image")
    detect_max_side: int = Field(1280, description="frames are downscaled to this longest side before YuNet")
    yunet_score: float = Field(0.6, description="YuNet confidence threshold")
    blazeface_score: float = Field(0.5, description="BlazeFace confidence threshold for the fallback")
    nms_iou: float = 0.3
    min_face_px: int = Field(16, description="faces smaller than this (box side) are dropped")
    embedder: str = Field(
        "sface-robust", description="default backbone: sface-robust | sface | dlib | fusion (see embed.EMBEDDERS)"
    )
    nose_mouth_visibility: bool = Field(True, description="run Face Mesh per face to say whether nose and mouth show")
    masked_eye_alignment: bool = Field(
        True, description="masked faces: embed aligned three ways (detector, Face Mesh's eyes, BlazeFace) and average"
    )
    flip: bool = Field(True, description="sface-robust and dlib: average each face's embedding with its mirror image's (more accurate, 2x embedding time)")
    threads: int = Field(0, description="threads of each ONNX Runtime session (0: all cores); the service sets cores/workers")
    verify_far: float = Field(1e-3, description="false accept rate the verify threshold is set at")


def get_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
