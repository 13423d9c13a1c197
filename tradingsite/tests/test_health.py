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


def test_a_lost_database_connection_is_a_retryable_503_not_a_500(auth_client, monkeypatch):
    # given the database refuses connections (PostgreSQL restarting), when an API view needs it,
    # then the client gets a JSON 503 with Retry-After instead of a 500
    from django.db import OperationalError

    from positions import views

    def refuse(**kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(views, "position_history", refuse)
    response = auth_client.get("/api/v1/positions/")
    assert response.status_code == 503
    assert response["Retry-After"] == "1"
    assert response.json()["detail"] == "The database is temporarily unavailable; retry shortly."
