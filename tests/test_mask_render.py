"""The synthetic mask renderer and the Face Mesh landmarker, on committed fixtures only."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from periface.errors import ImageError
from periface.image import load_image
from periface.landmarks import FaceMeshLandmarker, five_points, mesh_box
from periface.landmarks.facemesh import LOWER_LIP, MOUTH_CORNERS, NOSE_TIP, UPPER_LIP
from periface.mask.commands import mask_synth
from periface.mask.render import COVERAGES, KINDS, MaskStyle, add_mask, random_style, render_mask

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def landmarker() -> FaceMeshLandmarker:
    return FaceMeshLandmarker()


@pytest.fixture(scope="module")
def obama() -> np.ndarray:
    return load_image(FIXTURES / "obama.jpg")


@pytest.fixture(scope="module")
def mesh(landmarker, obama) -> np.ndarray:
    m = landmarker.landmarks(obama)
    assert m is not None
    return m


def _alpha_at(alpha: np.ndarray, p: np.ndarray) -> float:
    return float(alpha[int(round(p[1])), int(round(p[0]))])


# ------------------------------------------------------------------------------------------------ landmarks


def test_mesh_shape_and_five_point_order(mesh, obama):
    assert mesh.shape == (468, 3) and mesh.dtype == np.float32
    h, w = obama.shape[:2]
    assert (mesh[:, 0] > 0).all() and (mesh[:, 0] < w).all() and (mesh[:, 1] < h).all()
    pts = five_points(mesh)
    assert pts.shape == (5, 2)
    left_eye, right_eye, nose, mouth_l, mouth_r = pts
    assert left_eye[0] < nose[0] < right_eye[0]  # image-left eye first
    assert mouth_l[0] < nose[0] < mouth_r[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_l[1], mouth_r[1])


def test_landmarks_inside_a_box_match_the_whole_image(landmarker):
    img = load_image(FIXTURES / "two_people.jpg")
    whole = landmarker.landmarks(img)
    assert whole is not None
    box = mesh_box(whole)
    boxed = landmarker.landmarks(img, box)
    assert boxed is not None
    size = box[2] - box[0]
    assert np.median(np.linalg.norm(boxed[:, :2] - whole[:, :2], axis=1)) < 0.05 * size


def test_no_face_gives_none_not_a_crash(landmarker):
    grey = np.full((240, 240, 3), 128, np.uint8)
    assert landmarker.landmarks(grey) is None
    assert landmarker.landmarks(grey, np.array([50, 50, 150, 150])) is None
    assert add_mask(grey, seed=1, landmarker=landmarker) is None


def test_bad_inputs_raise_clear_errors(landmarker, obama, mesh):
    with pytest.raises(ImageError):
        landmarker.landmarks(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError):
        landmarker.landmarks(obama, np.array([5, 5, 1, 1]))
    with pytest.raises(ValueError):
        render_mask(obama, mesh[:100], MaskStyle(), np.random.default_rng(0))
    with pytest.raises(ValueError):
        MaskStyle(kind="balaclava")


# ------------------------------------------------------------------------------------------------- renderer


def test_same_seed_same_pixels_other_seed_other_pixels(landmarker, obama):
    a = add_mask(obama, seed=11, landmarker=landmarker)
    b = add_mask(obama, seed=11, landmarker=landmarker)
    c = add_mask(obama, seed=12, landmarker=landmarker)
    assert a is not None and b is not None and c is not None
    assert np.array_equal(a.image, b.image) and a.style == b.style
    assert not np.array_equal(a.image, c.image)
    assert not np.array_equal(a.image, obama)


@pytest.mark.parametrize("kind", KINDS)
def test_coverage_semantics(kind, obama, mesh):
    corners = mesh[list(MOUTH_CORNERS), :2]
    mouth_centre = (mesh[13, :2] + mesh[14, :2]) / 2
    for seed in range(3):
        for coverage in COVERAGES:
            rng = np.random.default_rng(seed)
            style = random_style(rng, coverage=coverage, kind=kind)
            alpha = render_mask(obama, mesh, style, rng).mask_alpha
            nose = _alpha_at(alpha, mesh[NOSE_TIP])
            mouth = _alpha_at(alpha, mouth_centre)
            corner = [_alpha_at(alpha, p) for p in corners]
            chin = _alpha_at(alpha, mesh[175])
            where = f"{kind}/{coverage}/seed {seed}"
            if coverage == "full":
                assert nose > 0.5 and mouth > 0.5 and min(corner) > 0.5 and chin > 0.5, where
            elif coverage == "nose_exposed":
                assert nose < 0.5 and mouth > 0.5 and min(corner) > 0.5 and chin > 0.5, where
            else:
                assert nose < 0.5 and max(corner) < 0.5 and chin > 0.5, where
                assert _alpha_at(alpha, mesh[0]) < 0.5, where  # the upper lip shows


def test_mask_stays_in_the_lower_face(obama, mesh):
    eyes_y = five_points(mesh)[:2, 1].max()
    x0, y0, x1, y1 = mesh_box(mesh)
    w = x1 - x0
    for seed in range(6):
        rng = np.random.default_rng(seed)
        alpha = render_mask(obama, mesh, random_style(rng), rng).mask_alpha
        ys, xs = np.nonzero(alpha > 0.5)
        assert ys.size > 0
        assert ys.min() > eyes_y, f"seed {seed}: mask reaches above the eyes"
        assert ys.max() < y1 + 0.35 * w and xs.min() > x0 - 0.2 * w and xs.max() < x1 + 0.2 * w


def test_full_mask_changes_the_mouth_colour(obama, mesh):
    import cv2

    lips = np.zeros(obama.shape[:2], np.uint8)
    cv2.fillPoly(lips, [mesh[list(UPPER_LIP) + list(LOWER_LIP[::-1]), :2].astype(np.int32)], 1)
    sel = lips.astype(bool)
    for kind, colour in (("surgical", (118, 170, 214)), ("cloth", (34, 34, 36)), ("n95", (234, 234, 228))):
        rng = np.random.default_rng(0)
        style = replace(random_style(rng, coverage="full", kind=kind), colour=colour, pattern="plain")
        out = render_mask(obama, mesh, style, rng).image
        diff = np.abs(out[sel].astype(float).mean(0) - obama[sel].astype(float).mean(0)).sum()
        assert diff > 60, f"{kind}: mouth colour moved only {diff:.0f}"


def test_random_styles_cover_every_kind_coverage_and_pattern():
    rng = np.random.default_rng(0)
    styles = [random_style(rng) for _ in range(300)]
    assert {s.kind for s in styles} == set(KINDS)
    assert {s.coverage for s in styles} == set(COVERAGES)
    assert {"plain", "pleats", "print", "check", "stripes", "dots", "camo"} <= {s.pattern for s in styles}
    assert len({s.colour for s in styles}) >= 15


# ------------------------------------------------------------------------------------------------------ CLI


def test_mask_synth_writes_files_and_reports_failures(tmp_path):
    app = typer.Typer()
    app.command()(mask_synth)
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    grey = tmp_path / "grey.png"
    import cv2

    cv2.imwrite(str(grey), np.full((200, 200, 3), 128, np.uint8))
    out = tmp_path / "out"
    args = [str(FIXTURES / "obama.jpg"), str(bad), str(grey), "--out", str(out), "--seed", "4", "--json"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == ImageError.exit_code, res.output
    doc = json.loads(res.stdout[res.stdout.index("{"):])
    assert doc["written"] == 1 and doc["failed"] == 2
    by_name = {Path(f["file"]).name: f for f in doc["files"]}
    assert by_name["obama.jpg"]["ok"] and by_name["obama.jpg"]["style"]["kind"] in KINDS
    assert by_name["broken.jpg"]["error"] == "bad_image"
    assert by_name["grey.png"]["error"] == "no_face"
    written = load_image(out / "obama_mask.png")
    assert written.shape == load_image(FIXTURES / "obama.jpg").shape

    res = CliRunner().invoke(app, [str(FIXTURES / "biden.jpg"), "--out", str(out), "--style", "kn95"])
    assert res.exit_code == 0, res.output
    assert "kn95" in res.stdout and (out / "biden_mask.png").is_file()

    res = CliRunner().invoke(app, [str(FIXTURES / "biden.jpg"), "--out", str(out), "--style", "gasmask"])
    assert res.exit_code != 0
