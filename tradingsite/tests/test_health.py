"""Probes: /healthz does no I/O; /readyz reports database and cache, fast even when Redis hangs."""

import time

import pytest
from django.test import override_settings

from conftest import redis_cache_settings

pytestmark = pytest.mark.django_db


def test_healthz_answers_without_touching_database_or_cache(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_database_and_cache_ok(client):
    response = client.get("/readyz")
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["cache"]["status"] == "ok"


def test_readyz_reports_a_stopped_redis_as_down_and_stays_ready(client, closed_redis_url):
    # given Redis is not listening, when /readyz is asked, then the cache is "down" but the
    # service stays ready (200): it serves from the database alone
    with override_settings(CACHES=redis_cache_settings(closed_redis_url)):
        started = time.monotonic()
        response = client.get("/readyz")
        elapsed = time.monotonic() - started
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "degraded"
    assert body["checks"]["cache"]["status"] == "down"
    assert body["checks"]["database"]["status"] == "ok"
    assert elapsed < 1.0


def test_readyz_answers_within_one_second_when_redis_accepts_and_never_replies(client, hung_redis_url):
    with override_settings(CACHES=redis_cache_settings(hung_redis_url)):
        started = time.monotonic()
        response = client.get("/readyz")
        elapsed = time.monotonic() - started
    body = response.json()
    assert response.status_code == 200
    assert body["checks"]["cache"]["status"] == "down"
    assert body["checks"]["cache"]["error"] in {"TimeoutError", "ConnectionError"}
    assert elapsed < 1.0


@pytest.mark.redis
def test_readyz_reports_a_real_redis_as_ok(client):
    body = client.get("/readyz").json()
    assert body["checks"]["cache"] == {**body["checks"]["cache"], "status": "ok", "backend": "redis"}
