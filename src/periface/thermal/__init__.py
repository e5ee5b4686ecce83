"""Thermal fever screening: radiometric readers, face finding, inner-canthus measurement, screening decisions.

>>> from periface.thermal import read_thermal, screen_frame, Blackbody       # doctest: +SKIP
>>> frame = read_thermal("crowd.jpg")                                         # doctest: +SKIP
>>> result = screen_frame(frame, blackbody=Blackbody.parse("600,20,30,30,35.0"))  # doctest: +SKIP
>>> [(f.core_c, f.flag) for f in result.faces]                               # doctest: +SKIP

A flag means "check this person with a clinical thermometer" (IEC 80601-2-59, ISO/TR 13154); it is never a
diagnosis. See docs/thermal.md for what the screening can and cannot tell.
"""

from .canthus import CanthusReading, measure_canthus
from .core_model import CanthusCoreModel
from .detect import ThermalFaceDetector
from .formats import ThermalFrame, read_thermal, write_temperature
from .planck import Radiometry, raw_to_celsius, transmission
from .registration import Homography
from .screening import Blackbody, ScreeningResult, ScreeningSettings, Screener, annotate, screen_frame
from .synthetic import FaceSpec, synthetic_scene

__all__ = [
    "Blackbody", "CanthusCoreModel", "CanthusReading", "FaceSpec", "Homography", "Radiometry", "ScreeningResult",
    "ScreeningSettings", "Screener", "ThermalFaceDetector", "ThermalFrame", "annotate", "measure_canthus",
    "raw_to_celsius", "read_thermal", "screen_frame", "synthetic_scene", "transmission", "write_temperature",
]
