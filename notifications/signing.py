"""Webhook signatures: HMAC-SHA256 over the timestamp and the body, Stripe's header layout.

Every delivery carries ``Tradingsite-Signature: t=<unix seconds>,v1=<hex digest>`` where

    digest = HMAC-SHA256(key=endpoint secret (UTF-8), message=f"{t}." (ASCII) + raw request body)

A receiver recomputes the digest over the raw body it received, compares it in constant time with
``v1`` and refuses a ``t`` older than its tolerance (300 s by default), which bounds replays. The
layout is Stripe's (``t=…,v1=…``), so existing verification code needs only the header name.
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "Tradingsite-Signature"
DEFAULT_TOLERANCE_S = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``f"{timestamp}.".encode() + body`` keyed by ``secret``."""
    message = f"{timestamp}.".encode("ascii") + body
    return hmac.new(secret.encode("utf-8"), message, hashlib.sha256).hexdigest()


def signature_header(secret: str, timestamp: int, body: bytes) -> str:
    """The header value ``t=<timestamp>,v1=<signature>``."""
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify(secret: str, header: str, body: bytes, *, now: int, tolerance_s: int = DEFAULT_TOLERANCE_S) -> bool:
    """True when ``header`` is a valid signature of ``body`` by ``secret`` made within ``tolerance_s`` of ``now``.

    The receiver's side of :func:`signature_header` (used by the tests as a real receiver would).
    """
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
        candidate = parts["v1"]
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    return hmac.compare_digest(candidate, signature(secret, timestamp, body))
