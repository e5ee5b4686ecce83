"""Inner-canthus temperature -> estimated core (oral) temperature, with ambient temperature as a covariate.

Fitted by ``scripts/fit_canthus_core.py`` on the PhysioNet facial/oral temperature data (Wang et al. 2023,
doi:10.13026/3bhc-9065, CC0): the maximum canthus temperature of each of four rounds against the mean oral
temperature in monitor mode. The coefficients live in ``data/thermal/canthus_core.json``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ModelError
from ..models import PACKAGE_DATA, verified

MODEL_PATH = PACKAGE_DATA / "thermal" / "canthus_core.json"
MODEL_SHA256 = "a8988d9c7b0d6af985991c6234631af3249a912e1078c4f593b59f138f3a5829"
FEATURES = ("canthus", "ambient", "canthus_x_ambient")


def design(canthus: np.ndarray, ambient: np.ndarray) -> np.ndarray:
    """The regression design matrix: intercept, canthus, ambient and their interaction (centred at 24 °C).

    The interaction lets the canthus-to-core gap widen in a cool room, where skin cools more than the core.
    """
    c = np.asarray(canthus, np.float64).ravel()
    a = np.asarray(ambient, np.float64).ravel() - 24.0
    return np.column_stack([np.ones_like(c), c, a, (c - 35.0) * a])


@dataclass
class CanthusCoreModel:
    """Linear model: core = w · [1, canthus, ambient-24, (canthus-35)(ambient-24)].

    >>> m = CanthusCoreModel(coef=[1.0, 1.0, 0.0, 0.0])
    >>> float(m.predict(35.5, 24.0)[0])
    36.5
    """

    coef: list[float]
    residual_sd: float = 0.0
    ambient_range: tuple[float, float] = (15.0, 35.0)
    info: dict = field(default_factory=dict)

    def predict(self, canthus: float | np.ndarray, ambient: float | np.ndarray = 24.0) -> np.ndarray:
        """Estimated core temperature (°C) for canthus temperatures at the given ambient temperature."""
        c = np.atleast_1d(np.asarray(canthus, np.float64))
        a = np.broadcast_to(np.asarray(ambient, np.float64), c.shape)
        # Outside the fitted ambient range the interaction term would extrapolate; hold it at the edge.
        a = np.clip(a, *self.ambient_range)
        return design(c, a) @ np.asarray(self.coef)

    @classmethod
    def fit(cls, canthus: np.ndarray, ambient: np.ndarray, core: np.ndarray, ridge: float = 1e-3
            ) -> "CanthusCoreModel":
        """Least-squares fit (a tiny ridge keeps the interaction stable with few cool-room samples)."""
        x = design(canthus, ambient)
        y = np.asarray(core, np.float64).ravel()
        penalty = ridge * np.eye(x.shape[1])
        penalty[0, 0] = 0.0
        coef = np.linalg.solve(x.T @ x + penalty, x.T @ y)
        resid = y - x @ coef
        amb = np.asarray(ambient, np.float64)
        return cls([float(v) for v in coef], float(resid.std(ddof=x.shape[1])),
                   (float(amb.min()), float(amb.max())))

    def save(self, path: Path) -> Path:
        path.write_text(json.dumps(asdict(self), indent=1, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, path: Path = MODEL_PATH, sha256: str | None = MODEL_SHA256) -> "CanthusCoreModel":
        """Load coefficients; the packaged file is SHA-256 checked like every model periface loads."""
        if sha256 is not None:
            verified(Path(path), sha256, "canthus_core")
        try:
            raw = json.loads(Path(path).read_text())
            return cls(list(raw["coef"]), float(raw["residual_sd"]), tuple(raw["ambient_range"]),
                       dict(raw.get("info", {})))
        except (KeyError, ValueError, TypeError) as err:
            raise ModelError(f"bad canthus-core model file: {err}", source=str(path)) from err


@dataclass
class PhysioNetTable:
    """Per subject: canthus maximum in each of 4 rounds (°C, NaN if missing), ambient, humidity, oral."""

    subject: np.ndarray
    canthus: np.ndarray  # (N, 4)
    ambient: np.ndarray
    humidity: np.ndarray
    distance: np.ndarray
    oral: np.ndarray


def load_physionet(path: Path, oral_column: str = "aveOralM") -> PhysioNetTable:
    """Parse ``FLIR_groups1and2.csv`` (or the ICI file) of the PhysioNet release.

    The file has three header rows; the third holds the column names (``canthiMax1``..``canthiMax4``,
    ``T_atm``, ``Humidity``, ``Distance``, ``aveOralM``).
    """
    with Path(path).open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    header = rows[2]
    body = [r for r in rows[3:] if r and r[0].strip()]

    def col(name: str) -> np.ndarray:
        i = header.index(name)
        return np.array([float(r[i]) if i < len(r) and r[i].strip() else np.nan for r in body])

    canthus = np.column_stack([col(f"canthiMax{k}") for k in range(1, 5)])
    keep = np.isfinite(col(oral_column)) & np.isfinite(col("T_atm")) & np.isfinite(canthus).any(axis=1)
    return PhysioNetTable(np.array([r[0] for r in body])[keep], canthus[keep], col("T_atm")[keep],
                          col("Humidity")[keep], col("Distance")[keep], col(oral_column)[keep])
