"""Privacy and governance: consent, retention, erasure, audit, template encryption, redaction."""

from .consent import Consent

__all__ = ["Consent"]
