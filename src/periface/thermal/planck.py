"""Radiometry: FLIR raw counts <-> temperature with the camera's Planck constants and atmospheric model.

The model is FLIR's (as documented by ExifTool's FLIR tags and the Thermimage ``raw2temp`` derivation): the
signal reaching the sensor is the object's emission attenuated by the atmosphere, plus reflected ambient
radiation, plus the atmosphere's own emission. Inverting it gives the object's radiance and then its temperature.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

KELVIN = 273.15


@dataclass(frozen=True)
class Radiometry:
    """Camera calibration and measurement conditions, as stored in a FLIR CameraInfo record.

    Temperatures are °C, distance in metres, humidity as a fraction (0..1).
    """

    planck_r1: float = 21106.77
    planck_b: float = 1501.0
    planck_f: float = 1.0
    planck_o: float = -7340.0
    planck_r2: float = 0.012545258
    emissivity: float = 0.98  # human skin, the value screening thermographs use
    distance: float = 1.0
    reflected: float = 20.0
    atmosphere: float = 20.0
    humidity: float = 0.5
    window_temperature: float = 20.0
    window_transmission: float = 1.0
    alpha1: float = 0.006569
    alpha2: float = 0.01262
    beta1: float = -0.002276
    beta2: float = -0.00667
    x: float = 1.9

    def with_(self, **changes: float) -> "Radiometry":
        """A copy with some fields changed, e.g. ``r.with_(distance=3.5)``."""
        return replace(self, **changes)


def transmission(r: Radiometry, distance: float | None = None) -> float:
    """Atmospheric transmission over ``distance`` metres (default ``r.distance``) at ``r``'s humidity.

    >>> round(transmission(Radiometry(distance=3.0, humidity=0.5, atmosphere=20.0)), 4)
    0.9926
    """
    d = r.distance if distance is None else distance
    t = r.atmosphere
    h2o = r.humidity * np.exp(1.5587 + 0.06939 * t - 0.00027816 * t**2 + 0.00000068455 * t**3)
    s = -np.sqrt(max(d, 0.0) / 2.0)
    return float(r.x * np.exp(s * (r.alpha1 + r.beta1 * np.sqrt(h2o)))
                 + (1 - r.x) * np.exp(s * (r.alpha2 + r.beta2 * np.sqrt(h2o))))


def _radiance(r: Radiometry, celsius: float | np.ndarray) -> np.ndarray:
    return r.planck_r1 / (r.planck_r2 * (np.exp(r.planck_b / (np.asarray(celsius) + KELVIN)) - r.planck_f)) - r.planck_o


def raw_to_celsius(raw: np.ndarray, r: Radiometry) -> np.ndarray:
    """Convert raw sensor counts to object temperature in °C (float32), atmospheric transmission included.

    The path is split in two halves around an optional IR window, as FLIR does; with no window
    (transmission 1) the halves simply multiply to the full-path transmission.

    >>> r = Radiometry(distance=2.0)
    >>> round(float(raw_to_celsius(celsius_to_raw(np.array(36.5), r), r)), 3)
    36.5
    """
    e = r.emissivity
    tau1 = transmission(r, r.distance / 2)
    tau2 = tau1
    irt = r.window_transmission
    raw_refl1 = (1 - e) / e * _radiance(r, r.reflected)
    raw_atm1 = (1 - tau1) / e / tau1 * _radiance(r, r.atmosphere)
    raw_wind = (1 - irt) / e / tau1 / irt * _radiance(r, r.window_temperature)
    raw_atm2 = (1 - tau2) / e / tau1 / irt / tau2 * _radiance(r, r.atmosphere)
    # The reflection off the window is taken as zero, as in FLIR's own software.
    obj = np.asarray(raw, np.float64) / e / tau1 / irt / tau2 - raw_atm1 - raw_atm2 - raw_wind - raw_refl1
    with np.errstate(invalid="ignore", divide="ignore"):
        t = r.planck_b / np.log(r.planck_r1 / (r.planck_r2 * (obj + r.planck_o)) + r.planck_f) - KELVIN
    return t.astype(np.float32)


def celsius_to_raw(celsius: np.ndarray, r: Radiometry) -> np.ndarray:
    """Inverse of :func:`raw_to_celsius`: the counts a camera would record for objects at ``celsius``."""
    e = r.emissivity
    tau1 = transmission(r, r.distance / 2)
    tau2 = tau1
    irt = r.window_transmission
    obj = _radiance(r, celsius)
    extra = ((1 - e) / e * _radiance(r, r.reflected) + (1 - tau1) / e / tau1 * _radiance(r, r.atmosphere)
             + (1 - irt) / e / tau1 / irt * _radiance(r, r.window_temperature)
             + (1 - tau2) / e / tau1 / irt / tau2 * _radiance(r, r.atmosphere))
    return (obj + extra) * e * tau1 * irt * tau2


def retarget(celsius: np.ndarray, old: Radiometry, new: Radiometry) -> np.ndarray:
    """Recompute temperatures for changed conditions (e.g. the per-face distance, or skin emissivity).

    >>> t = np.array([34.0])
    >>> bool(retarget(t, Radiometry(distance=1.0), Radiometry(distance=6.0))[0] > 34.0)
    True
    """
    return raw_to_celsius(celsius_to_raw(np.asarray(celsius, np.float64), old), new)
