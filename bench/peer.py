"""The reference peer of ``make bench``: the smallest service a user could pick instead of this one.

FastAPI + uvicorn + redis.asyncio + PyJWT (bench-only pins in ``bench/requirements.txt``). For a GET of
``/api/v1/...`` it verifies the bearer token as SimpleJWT issues it (HS256 with ``JWT_SIGNING_KEY``,
expiry with the same 5 s leeway, ``token_type`` = access), then answers the bytes stored in Redis under
:func:`peer_key` with one GET — the same bytes the service answers for the same token, primed by
``bench/run_benchmark.py`` from the service itself. No database, no middleware, no logging: the
throughput of the service's hot reads is printed as a ratio of this.

    JWT_SIGNING_KEY=... PEER_REDIS_URL=redis://127.0.0.1:6379/5 PEER_KEY_PREFIX=peer:<run> \\
      uvicorn bench.peer:app --workers 2 --no-access-log --loop uvloop --http httptools --port 8001
"""

from __future__ import annotations

import hashlib
import os

import jwt
import redis.asyncio as aioredis
from fastapi import FastAPI, Request, Response

KEY_PREFIX = os.environ.get("PEER_KEY_PREFIX", "peer")


def peer_key(prefix: str, path: str, token: str) -> str:
    """Redis key of the body answered for ``path`` with ``token`` (a digest of the token, not the token)."""
    return f"{prefix}:{path}:{hashlib.sha256(token.encode()).hexdigest()[:32]}"


app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
_redis = aioredis.from_url(os.environ.get("PEER_REDIS_URL", "redis://127.0.0.1:6379/5"))
_SIGNING_KEY = os.environ.get("JWT_SIGNING_KEY", "")
_UNAUTHORIZED = Response(b'{"detail":"unauthorized"}', status_code=401, media_type="application/json")


@app.get("/healthz")
async def healthz() -> Response:
    return Response(b'{"status":"ok"}', media_type="application/json")


@app.get("/api/v1/{rest:path}")
async def cached_read(rest: str, request: Request) -> Response:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme != "Bearer" or not token:
        return _UNAUTHORIZED
    try:
        claims = jwt.decode(token, _SIGNING_KEY, algorithms=["HS256"], leeway=5, options={"require": ["exp"]})
    except jwt.PyJWTError:
        return _UNAUTHORIZED
    if claims.get("token_type") != "access":
        return _UNAUTHORIZED
    body = await _redis.get(peer_key(KEY_PREFIX, request.url.path, token))
    if body is None:
        return Response(b'{"detail":"not primed"}', status_code=404, media_type="application/json")
    return Response(body, media_type="application/json")
