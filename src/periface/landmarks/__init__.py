"""Dense landmarks (MediaPipe Face Mesh) and the named index groups the rest of periface uses."""

from .facemesh import (
    CHIN,
    FACE_OVAL,
    JAW_LINE,
    LEFT_EYE,
    LOWER_LIP,
    MOUTH_CORNERS,
    NOSE_BRIDGE,
    NOSE_TIP,
    RIGHT_EYE,
    UPPER_LIP,
    FaceMeshLandmarker,
    five_points,
    mesh_box,
)

__all__ = [
    "CHIN", "FACE_OVAL", "JAW_LINE", "LEFT_EYE", "LOWER_LIP", "MOUTH_CORNERS", "NOSE_BRIDGE", "NOSE_TIP",
    "RIGHT_EYE", "UPPER_LIP", "FaceMeshLandmarker", "five_points", "mesh_box",
]
