"""Retention: expiry is the earlier of consent expiry and last use + the policy's days (3 years at most)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone

import pytest

from periface.privacy import Consent
from periface.privacy.retention import RetentionPolicy, expired, expires_for


@dataclass
class Row:
    name: str
    last_used: datetime | None
    consent: Consent | None = None


def _consent(expires: str) -> Consent:
    return Consent(subject="s", purpose="door access", collected_at=date(2020, 1, 1), expires=expires)


def test_default_is_three_years_after_last_use() -> None:
    policy = RetentionPolicy()
    assert policy.days == 3 * 365
    assert policy.expires(last_used=date(2021, 1, 1)) == date(2024, 1, 1)  # 1095 days, no leap day between


def test_consent_expiry_wins_when_earlier() -> None:
    policy = RetentionPolicy(days=365)
    assert policy.expires(last_used="2024-06-01", consent_expires="2024-07-01") == date(2024, 7, 1)
    assert policy.expires(last_used="2024-06-01", consent_expires="2030-01-01") == date(2025, 6, 1)


def test_longer_than_the_ceiling_is_refused() -> None:
    with pytest.raises(ValueError):
        RetentionPolicy(days=3 * 365 + 1)
    with pytest.raises(ValueError):
        RetentionPolicy(days=0)


def test_expired_picks_the_due_ones_from_objects_and_dicts() -> None:
    now = date(2025, 1, 1)
    rows = [
        Row("recent", datetime(2024, 12, 1, tzinfo=timezone.utc), _consent("2030-01-01")),
        Row("old", datetime(2021, 1, 1, tzinfo=timezone.utc), _consent("2030-01-01")),
        Row("consent-over", datetime(2024, 12, 1, tzinfo=timezone.utc), _consent("2024-12-31")),
        Row("undated", None),
    ]
    dicts = [{"name": "d", "last_used": "2024-01-01T10:00:00+00:00", "consent_expires": "2024-06-01"}]
    assert [r.name for r in expired(rows, now=now)] == ["old", "consent-over", "undated"]
    assert expired(dicts, now=now) == dicts
    assert [r.name for r in expired(rows, now=now, policy=RetentionPolicy(days=31))] == [
        "recent", "old", "consent-over", "undated"
    ]


def test_shorter_policy_expires_sooner() -> None:
    row = {"last_used": "2024-12-01", "consent_expires": "2030-01-01"}
    assert expired([row], now="2025-01-01", policy=RetentionPolicy(days=30)) == [row]
    assert expired([row], now="2025-01-01", policy=RetentionPolicy(days=32)) == []
    # Due on the expiry day itself: "gone by" that day.
    assert expires_for(row, RetentionPolicy(days=31)) == date(2025, 1, 1)
    assert expired([row], now="2025-01-01", policy=RetentionPolicy(days=31)) == [row]


def test_enrolled_date_stands_in_for_last_use() -> None:
    row = {"enrolled": "2020-01-01"}
    assert expired([row], now="2024-01-01") == [row]
