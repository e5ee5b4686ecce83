"""Pydantic models: the one schema for the API, its validation and the OpenAPI page."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, Field

from ..privacy.audit import AuditRecord, AuditReport

__all__ = [
    "AuditRecord", "AuditReport", "AuditPage", "CandidateOut", "DecisionIn", "DecisionOut", "DetectResponse",
    "ErrorBody", "ErrorResponse", "FaceOut", "Health", "IdentityOut", "IdentityList", "KeyCreated", "KeyCreateIn",
    "KeyOut", "ScreenResponse", "SearchResponse", "VerifyResponse", "ErasureOut",
]


class ErrorBody(BaseModel):
    code: str = Field(description="stable, machine-readable: unauthorized, forbidden, rate_limited, ...")
    message: str
    details: Any | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str


class FaceOut(BaseModel):
    box: list[float] = Field(description="x0, y0, x1, y1 in pixels")
    score: float = Field(description="detector score; with crowd, the calibrated probability that this is a face")
    landmarks: list[list[float]] | None = None
    mask: str | None = Field(None, description="none | correct | incorrect")
    mask_score: float | None = Field(None, description="probability that the face wears a mask")
    nose_visible: float | None = Field(None, description="probability that the nose shows (Face Mesh and the CNN)")
    mouth_visible: float | None = Field(None, description="probability that the mouth shows")


class DetectResponse(BaseModel):
    width: int
    height: int
    faces: list[FaceOut]


class VerifyResponse(BaseModel):
    same: bool
    score: float
    threshold: float
    far: float = Field(description="false accept rate that this score corresponds to")
    target_far: float | None = None
    notes: list[str] = []


class ConsentOut(BaseModel):
    purpose: str
    collected_by: str
    collected_at: date | None = None
    expires: date | None = None
    reference: str | None = None


class IdentityOut(BaseModel):
    name: str
    templates: int | None = None
    masked_templates: int | None = None
    enrolled: str | None = None
    last_used: str | None = None
    expires: str | None = None
    has_images: bool = False
    consent: ConsentOut | None = None


class IdentityList(BaseModel):
    identities: list[IdentityOut]


class ErasureOut(BaseModel):
    erased: str
    audit_seq: int | None = None


class CandidateOut(BaseModel):
    identity: str
    rank: int
    score: float
    far: float = Field(description="chance that an impostor scores this high")
    masked: bool = Field(description="the probe face wears a mask")


class SearchResponse(BaseModel):
    probe_sha256: str = Field(description="SHA-256 of the (first) photo; a reviewer's decision refers to it")
    probes: list[str] = Field(description="SHA-256 of every photo searched with, in order, as the audit log has them")
    purpose: str
    candidates: list[CandidateOut]


class DecisionIn(BaseModel):
    identity: str = Field(min_length=1, max_length=200)
    decision: Literal["confirm", "reject"]
    probe_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    score: float | None = None
    note: str | None = Field(None, max_length=500)


class DecisionOut(BaseModel):
    recorded: Literal["confirm", "reject"]
    audit_seq: int


class ScreenResponse(BaseModel):
    width: int | None = None
    height: int | None = None
    people: list[dict[str, Any]]
    flagged: int
    details: dict[str, Any] = {}


class AuditPage(BaseModel):
    records: list[AuditRecord]


class KeyCreateIn(BaseModel):
    role: Literal["admin", "operator", "auditor"]
    label: str = Field("", max_length=200)


class KeyOut(BaseModel):
    id: str
    role: str
    label: str
    created: str
    revoked: str | None = None
    last_used: str | None = None


class KeyCreated(KeyOut):
    key: str = Field(description="shown once; only its SHA-256 is stored")
