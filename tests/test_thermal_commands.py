"""The thermal Typer commands, driven through CliRunner on a local app (cli.py mounts the same objects)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer
from typer.testing import CliRunner

from periface.thermal.commands import screen, thermal_app
from periface.thermal.synthetic import synthetic_scene, synthetic_stream

FFF = Path(__file__).parent / "fixtures" / "thermal" / "flir_t420_le.fff"
runner = CliRunner()

app = typer.Typer()
app.add_typer(thermal_app, name="thermal")
app.command("screen")(screen)


def _scene_npy(tmp_path: Path, seed: int = 0) -> tuple[Path, str]:
    scene = synthetic_scene(seed=seed)
    p = tmp_path / f"frame{seed:03d}.npy"
    np.save(p, scene.frame.temperature)
    return p, ",".join(str(v) for v in scene.blackbody)


def test_export_npy_and_csv(tmp_path: Path) -> None:
    out = tmp_path / "t.npy"
    res = runner.invoke(app, ["thermal", "export", str(FFF), "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["shape"] == [240, 320] and doc["camera"].startswith("FLIR T420")
    assert np.load(out).shape == (240, 320)
    res = runner.invoke(app, ["thermal", "export", str(FFF), "--out", str(tmp_path / "t.csv")])
    assert res.exit_code == 0 and "t.csv" in res.stdout
    assert np.loadtxt(tmp_path / "t.csv", delimiter=",").shape == (240, 320)


def test_export_bad_input_exit_code(tmp_path: Path) -> None:
    bad = tmp_path / "photo.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xd9")
    res = runner.invoke(app, ["thermal", "export", str(bad), "--out", str(tmp_path / "t.npy")])
    assert res.exit_code == 9
    assert f"error: {bad}: " in res.stderr and "no FLIR thermal data" in res.stderr


def test_calibrate(tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("xv,yv,xt,yt\n0,0,10,5\n640,0,330,5\n640,480,330,245\n0,480,10,245\n320,240,170,125\n")
    out = tmp_path / "h.json"
    res = runner.invoke(app, ["thermal", "calibrate", str(pairs), "--out", str(out), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["rmse_px"] < 0.01
    assert json.loads(out.read_text())["type"] == "periface.homography"
    (tmp_path / "few.csv").write_text("0,0,1,1\n1,1,2,2\n")
    res = runner.invoke(app, ["thermal", "calibrate", str(tmp_path / "few.csv"), "--out", str(out)])
    assert res.exit_code == 2 and "at least 4" in res.stderr


def test_screen_json_and_annotation(tmp_path: Path, monkeypatch) -> None:
    frame, bb = _scene_npy(tmp_path)
    scene = synthetic_scene(seed=0)
    # The CLI's thermal-only mode uses the packaged detector; here the synthetic truth stands in for it.
    monkeypatch.setattr("periface.thermal.screening._default_thermal_detector",
                        lambda t: np.array([f.box for f in scene.truth]))
    png = tmp_path / "overlay.png"
    res = runner.invoke(app, ["screen", str(frame), "--blackbody", bb, "--json", "--annotate", str(png)])
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert [f["flag"] for f in doc["faces"]] == [False, True]
    assert doc["faces"][1]["core_c"] >= 37.5 and doc["blackbody_offset_c"] < 0
    assert png.stat().st_size > 1000
    res = runner.invoke(app, ["screen", str(frame), "--blackbody", bb])
    assert res.exit_code == 0 and "CHECK" in res.stdout and "clinical thermometer" in res.stdout


def test_screen_errors(tmp_path: Path) -> None:
    frame, _ = _scene_npy(tmp_path)
    res = runner.invoke(app, ["screen", str(frame), "--blackbody", "1,2,3"])
    assert res.exit_code == 2 and res.stderr.startswith("error: ")
    res = runner.invoke(app, ["screen", str(frame), "--visible", str(frame)])
    assert res.exit_code != 0
    res = runner.invoke(app, ["screen"])
    assert res.exit_code == 1 and "--watch" in res.stderr


def test_watch_keeps_population_statistics(tmp_path: Path, monkeypatch) -> None:
    scenes = synthetic_stream(n=12, fever_every=6, seed=2)
    for i, s in enumerate(scenes):
        np.save(tmp_path / f"f{i:03d}.npy", s.frame.temperature)
    (tmp_path / "f999.npy").write_bytes(b"junk")  # one broken frame must not stop the line
    box = np.array([scenes[0].truth[0].box])
    monkeypatch.setattr("periface.thermal.screening._default_thermal_detector", lambda t: box)
    bb = ",".join(str(v) for v in scenes[0].blackbody)
    res = runner.invoke(app, ["screen", "--watch", str(tmp_path), "--once", "--json", "--blackbody", bb])
    assert res.exit_code == 0, res.output
    docs = [json.loads(line) for line in res.stdout.splitlines()]
    assert len(docs) == 12
    assert docs[-1]["population_size"] == 12 and docs[-1]["population_median_c"] is not None
    assert [i for i, d in enumerate(docs) if d["faces"][0]["flag"]] == [5, 11]
    assert "f999.npy" in res.stderr
