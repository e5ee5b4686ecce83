"""Retention: every identity expires, at the latest three years after it was last used (BIPA's ceiling).

An identity's expiry is the earlier of its consent's expiry and ``last_used + policy.days``. The gallery asks
``expired(identities, now)`` which ones are due and deletes them (``periface purge``, the service's background
task).

>>> from datetime import date
>>> policy = RetentionPolicy(days=365)
>>> policy.expires(last_used=date(2024, 1, 1), consent_expires=date(2030, 1, 1)).isoformat()
'2024-12-31'
>>> expired([{"name": "a", "last_used": "2020-01-01", "consent_expires": "2030-01-01"}], now=date(2024, 1, 1))
[{'name': 'a', 'last_used': '2020-01-01', 'consent_expires': '2030-01-01'}]
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable, TypeVar

from .consent import DEFAULT_RETENTION_DAYS

T = TypeVar("T")

DateLike = date | datetime | str | None


def _as_date(value: DateLike) -> date | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value) if "T" in value or " " in value else date.fromisoformat(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc)
        return value.date()
    return value


def _field(item: Any, *names: str) -> Any:
    """The first of ``names`` that ``item`` has, as an attribute or a mapping key; ``consent.expires`` dotted."""
    for name in names:
        obj = item
        found = True
        for part in name.split("."):
            if isinstance(obj, dict) and part in obj:
                obj = obj[part]
            elif not isinstance(obj, dict) and hasattr(obj, part):
                obj = getattr(obj, part)
            else:
                found = False
                break
        if found and obj is not None:
            return obj
    return None


@dataclass(frozen=True)
class RetentionPolicy:
    """How long an unused identity is kept. Shorter than the default is allowed; longer is refused."""

    days: int = DEFAULT_RETENTION_DAYS

    def __post_init__(self) -> None:
        if not 1 <= self.days <= DEFAULT_RETENTION_DAYS:
            raise ValueError(f"retention must be between 1 and {DEFAULT_RETENTION_DAYS} days, got {self.days}")

    def expires(self, *, last_used: DateLike, consent_expires: DateLike = None) -> date:
        """The day the identity must be gone by: ``min(consent_expires, last_used + days)``."""
        used = _as_date(last_used)
        if used is None:
            raise ValueError("an identity without a last-use (or enrolment) date cannot be given an expiry")
        limit = used + timedelta(days=self.days)
        consent = _as_date(consent_expires)
        return min(limit, consent) if consent is not None else limit

    def is_expired(self, *, last_used: DateLike, consent_expires: DateLike = None, now: DateLike = None) -> bool:
        today = _as_date(now) or datetime.now(timezone.utc).date()
        return today >= self.expires(last_used=last_used, consent_expires=consent_expires)


def expires_for(item: Any, policy: RetentionPolicy | None = None) -> date:
    """Expiry of one identity record (attribute or dict) with ``last_used`` (or ``enrolled``/``created``) and
    ``consent_expires`` (or ``consent.expires``)."""
    policy = policy or RetentionPolicy()
    return policy.expires(
        last_used=_field(item, "last_used", "enrolled", "enrolled_at", "created", "created_at"),
        consent_expires=_field(item, "consent_expires", "consent.expires"),
    )


def expired(identities: Iterable[T], now: DateLike = None, policy: RetentionPolicy | None = None) -> list[T]:
    """The identities whose retention has run out on ``now`` (default: today, UTC), in the order given.

    Each item is an object or a dict with ``last_used`` (falls back to ``enrolled``/``created``) and
    ``consent_expires`` (or a ``consent`` with ``.expires``). Items without any date are treated as expired:
    an identity whose age cannot be told must not be kept indefinitely.
    """
    policy = policy or RetentionPolicy()
    today = _as_date(now) or datetime.now(timezone.utc).date()
    due: list[T] = []
    for item in identities:
        try:
            if today >= expires_for(item, policy):
                due.append(item)
        except ValueError:
            due.append(item)
    return due
