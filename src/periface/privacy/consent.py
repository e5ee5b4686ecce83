"""Consent records. No consent, no enrolment; every record states a purpose and an expiry."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from pydantic import BaseModel, Field, field_validator, model_validator

#: BIPA's ceiling: biometric data is destroyed at the latest three years after the last interaction.
DEFAULT_RETENTION_DAYS = 3 * 365


def _today() -> date:
    return datetime.now(timezone.utc).date()


class Consent(BaseModel):
    """An explicit, written consent (GDPR Art. 9(2)(a); BIPA written release) for one subject and one purpose.

    >>> Consent(subject="alice", purpose="door access", expires="2027-12-31").expires.isoformat()
    '2027-12-31'
    """

    subject: str = Field(min_length=1, max_length=200)
    purpose: str = Field(min_length=3, max_length=500)
    collected_by: str = Field("unspecified", max_length=200)
    collected_at: date = Field(default_factory=_today)
    expires: date = Field(default_factory=lambda: _today() + timedelta(days=DEFAULT_RETENTION_DAYS))
    reference: str | None = Field(None, description="where the signed form is kept", max_length=500)

    @field_validator("subject", "purpose", "collected_by")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value.strip()

    @model_validator(mode="after")
    def _dates_make_sense(self) -> "Consent":
        if self.expires <= self.collected_at:
            raise ValueError("consent must expire after it was collected")
        return self

    def is_valid(self, on: date | None = None) -> bool:
        return (on or _today()) < self.expires
