"""Checksums of the files periface trains and ships: recorded by training scripts, checked before loading."""

from __future__ import annotations

import pytest

from periface.errors import ModelError
from periface.models import record_sha256, recorded_sha256, verified


def test_record_sha256_replaces_only_its_own_line(tmp_path):
    (tmp_path / "SHA256SUMS").write_text("aaaa  other.onnx\nbbbb  model.onnx\n")
    model = tmp_path / "model.onnx"
    model.write_bytes(b"weights v2")
    digest = record_sha256(model)
    assert recorded_sha256(model) == digest
    assert recorded_sha256(tmp_path / "other.onnx") == "aaaa"
    assert (tmp_path / "SHA256SUMS").read_text().count("model.onnx") == 1
    assert verified(model, digest) == model
    model.write_bytes(b"weights v3")
    with pytest.raises(ModelError, match="SHA-256 mismatch"):
        verified(model, digest)


def test_a_file_without_a_recorded_checksum_is_refused(tmp_path):
    (tmp_path / "unlisted.onnx").write_bytes(b"x")
    with pytest.raises(ModelError, match="no SHA-256 recorded"):
        recorded_sha256(tmp_path / "unlisted.onnx")


def test_mediapipe_start_up_notices_are_dropped_and_anything_else_on_stderr_is_kept(capfd):
    import os

    from periface.models import routine_native_notices_hidden

    with routine_native_notices_hidden():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(2, b"E0000 something native really went wrong\n")
    assert capfd.readouterr().err == "E0000 something native really went wrong\n"


def test_a_cli_command_that_runs_face_mesh_prints_no_native_notices(tmp_path, fixtures):
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "periface.cli", "mask-synth", str(fixtures / "obama.jpg"), "--out", str(tmp_path),
         "--seed", "1"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "XNNPACK" not in out.stderr and "W0000" not in out.stderr, out.stderr
