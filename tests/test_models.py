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
