"""The service's limits: upload size, image pixels, request rate per key; and its settings."""

from __future__ import annotations

import threading
import time

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..errors import PerifaceError


class ServiceSettings(BaseSettings):
    """Settings of ``periface serve``; ``PERIFACE_SERVICE_*`` environment variables override the defaults."""

    model_config = SettingsConfigDict(env_prefix="PERIFACE_SERVICE_", frozen=True)

    max_upload_bytes: int = Field(10 * 1024 * 1024, description="largest request body; larger is refused with 413")
    max_pixels: int = Field(25_000_000, description="largest decoded image (width x height)")
    rate_per_second: float = Field(20.0, description="sustained requests per second per API key")
    rate_burst: int = Field(40, description="requests a key may send at once before the rate applies")
    workers: int = Field(2, description="engines for detect/verify/redact in parallel (one per core)")
    max_k: int = Field(50, description="most candidates a search may return")
    max_search_photos: int = Field(10, description="most photos of one person a search may be made with")
    purge_interval_s: float = Field(3600.0, description="how often expired identities are deleted; 0 = never")
    session_ttl_s: int = Field(8 * 3600, description="how long a web-page login lasts")
    retention_days: int | None = Field(None, description="retention shorter than the 3-year default")
    watch_dir: str | None = Field(None, description="folder of thermal images the screening view watches")


class RateLimitedError(PerifaceError):
    code = "rate_limited"
    exit_code = 13
    http_status = 429

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UploadTooLargeError(PerifaceError):
    code = "upload_too_large"
    exit_code = 14
    http_status = 413


class PhotoCountError(PerifaceError):
    code = "bad_photo_count"
    exit_code = 16
    http_status = 422


class OperatingPointError(PerifaceError):
    code = "bad_operating_point"
    exit_code = 17
    http_status = 422


class TokenBuckets:
    """One token bucket per key: ``burst`` tokens, refilled at ``rate`` per second. Thread-safe, in memory."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = float(rate)
        self.burst = max(1, int(burst))
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> None:
        """Spend one token of ``key``'s bucket or raise ``RateLimitedError`` with the wait in seconds."""
        if self.rate <= 0:
            return
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[key] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
                raise RateLimitedError(f"rate limit of {self.rate:g} requests/s exceeded; retry later", wait)
            self._buckets[key] = (tokens - 1.0, now)
