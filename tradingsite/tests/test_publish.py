"""Warm, then publish (issue 13): readers stay on the previous generation's entries until a write's warm
has stored the new ones, and a stored page is not served once newer data is published.

Before, a write bumped the user's generation at commit and the background warmer filled the new
generation afterwards: a read in between missed the data layer and computed the read itself (6–7 %
of the benchmark's reads), and a page made before the write was served until its 5 s TTL ran out,
whatever the data did.
"""

from __future__ import annotations

import pytest
from django.core.cache import cache, caches
from django.test import RequestFactory, override_settings
from django.utils.cache import _generate_cache_key  # type: ignore[attr-defined]
from rest_framework.test import APIClient

from accounts.tests.factories import default_account
from conftest import access_token_for
from positions.selectors import open_positions
from tradingsite import caching
from tradingsite.caching import (
    bump_and_warm_user,
    latest_generation,
    publish_generation,
    user_generation,
    warm_user_reads,
)
from tradingsite.generations import PAGE_GENERATION_ATTR, generation_cache_key, published_cache_key
from tradingsite.page_hit import LEARNED_HEADERS
from tradingsite.tests.test_write_through import HOT, LOCMEM, open_position

pytestmark = pytest.mark.django_db


@pytest.fixture
def account(user):
    """The user's account (the one the positions are opened on)."""
    return default_account(user)


class QueuedWarms:
    """Stands in for the background warmer: keeps the submitted warms queued until the test runs them (in
    the test's thread, which alone sees the test's transaction)."""

    def __init__(self) -> None:
        self.queued: list[tuple[int, int]] = []

    def submit(self, user_id: int, generation: int) -> None:
        self.queued.append((user_id, generation))

    def run(self) -> None:
        while self.queued:
            warm_user_reads(*self.queued.pop(0))


@pytest.fixture
def queued_warms(monkeypatch):
    warms = QueuedWarms()
    monkeypatch.setattr(caching, "warmer", warms)
    return warms


@override_settings(CACHE_WARM_IN_BACKGROUND=True, CACHES=LOCMEM)
def test_a_read_while_the_warm_runs_is_a_data_hit_on_the_previous_generation(
    account, user, queued_warms, django_assert_num_queries
):
    # given one open position, its reads warmed and published
    cache.clear()
    open_position(user, ticket=920001, symbol="EURUSD")
    warm_user_reads(user.id)
    before = user_generation(user.id)
    # when a second position is written and its warm is still queued
    open_position(user, ticket=920002, symbol="GBPUSD")
    bump_and_warm_user(user.id)
    assert latest_generation(user.id) == before + 1
    # then a read computes nothing (the old code computed it: positions, snapshot, instruments = 3 queries)
    # and shows the previous generation's data, whole
    with django_assert_num_queries(0):
        assert open_positions(user_id=user.id, account_id=account.pk)["count"] == 1
    assert user_generation(user.id) == before
    # and once the warm has stored the new entries, the same read shows the write, still with no SQL
    assert queued_warms.queued == [(user.id, before + 1)]
    queued_warms.run()
    assert user_generation(user.id) == before + 1
    with django_assert_num_queries(0):
        assert open_positions(user_id=user.id, account_id=account.pk)["count"] == 2


@override_settings(CACHES=LOCMEM, API_CACHE_TTL_S=5, API_DATA_TTL_S=5)
def test_a_warm_that_never_finishes_holds_readers_no_longer_than_the_page_ttl_after_the_write(
    account, user, cache_clock
):
    # given a clock for the cache's expiry and one position published at t = 0
    cache.clear()
    open_position(user, ticket=920011, symbol="EURUSD")
    warm_user_reads(user.id)
    published = user_generation(user.id)
    # when a write at t = 4 s bumps the generation and its warm is lost (the process died: nothing publishes)
    cache_clock.now += 4
    open_position(user, ticket=920012, symbol="GBPUSD")
    generation = caching._bump(user.id)
    assert generation == published + 1
    # then readers stay on the published generation for up to the page TTL (5 s) after the write — past
    # t = 5 s, where a TTL counted from the publish would have let them compute while a normal warm runs …
    cache_clock.now += 4.9
    assert user_generation(user.id) == published
    # … and move to the latest after it, computing the write from the database
    cache_clock.now += 0.2
    assert user_generation(user.id) == generation
    assert open_positions(user_id=user.id, account_id=account.pk)["count"] == 2


@override_settings(CACHES=LOCMEM)
def test_an_older_warm_never_moves_readers_back(user):
    cache.clear()
    # given generations 100 then 101 written, and 101's warm published first
    cache.set(generation_cache_key(user.id), 101)
    publish_generation(user.id, 101)
    # when 100's warm publishes late
    publish_generation(user.id, 100)
    # then readers stay on 101
    assert cache.get(published_cache_key(user.id)) == 101
    assert user_generation(user.id) == 101


@pytest.mark.redis
def test_the_bump_and_publish_scripts_on_redis(user):
    # given no counters for the user: the first bump creates the latest generation from the time in ms
    cache.delete_many([generation_cache_key(user.id), published_cache_key(user.id)])
    first = caching._bump(user.id)
    assert first > 1_700_000_000_000  # ms since 1970: 2023-11-14 onwards
    assert cache.get(published_cache_key(user.id)) is None
    assert user_generation(user.id) == first
    # when a second write bumps it (nothing published yet)
    second = caching._bump(user.id)
    # then readers are held on the previous generation (NX), with the published TTL (the page TTL, 5 s)
    assert second == first + 1
    assert cache.get(published_cache_key(user.id)) == first
    assert 0 < cache.ttl(published_cache_key(user.id)) <= 5
    assert user_generation(user.id) == first
    # and publishing moves them; an older publish does not move them back
    publish_generation(user.id, second)
    assert user_generation(user.id) == second
    publish_generation(user.id, first)
    assert cache.get(published_cache_key(user.id)) == second
    # and a third bump with a publish present leaves the published one as it is, for another TTL
    cache.expire(published_cache_key(user.id), 1)
    third = caching._bump(user.id)
    assert (third, user_generation(user.id), latest_generation(user.id)) == (second + 1, second, second + 1)
    assert cache.ttl(published_cache_key(user.id)) in (4, 5)


def bearer(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token_for(user)}")
    return client


@pytest.mark.parametrize("route", list(HOT))
def test_a_page_made_before_a_write_is_not_served_once_the_write_is_published(route, account, user):
    # given a page stored by a first read and served by the fast path (it carries Age)
    client = bearer(user)
    first = client.get(HOT[route])
    assert first.status_code == 200
    hit = client.get(HOT[route])
    assert "Age" in hit and hit.content == first.content
    # when a position is opened and the write's warm publishes (inline in the tests)
    open_position(user, ticket=920021, symbol="EURUSD")
    bump_and_warm_user(user.id)
    # then the next read shows it at once (the old code served the stored page until its 5 s TTL)
    after = client.get(HOT[route])
    assert "Age" not in after
    body = after.json()
    if route == "positions:open":
        assert body["count"] == 1
    elif route == "reconciliation:status":
        assert body["open_positions_count"] == 1
    # and the new page records the published generation, and is itself a hit on the next read
    again = client.get(HOT[route])
    assert "Age" in again and again.content == after.content


def test_the_browsable_api_and_session_path_also_refuses_an_outdated_page(account, user, password):
    # given a session (cookie: the full path through DRF and cache_page) with a stored page
    client = APIClient()
    assert client.login(username=user.username, password=password)
    url = HOT["positions:open"]
    assert client.get(url, HTTP_ACCEPT="application/json").json()["count"] == 0
    assert "Age" in client.get(url, HTTP_ACCEPT="application/json")
    # when a position is opened and published
    open_position(user, ticket=920031, symbol="EURUSD")
    bump_and_warm_user(user.id)
    # then the session read shows it at once
    after = client.get(url, HTTP_ACCEPT="application/json")
    assert ("Age" in after, after.json()["count"]) == (False, 1)


def test_a_stored_page_records_the_generation_of_its_data(account, user):
    # given the user's reads published at generation G
    warm_user_reads(user.id)
    generation = user_generation(user.id)
    # when a page is made by a read
    token = access_token_for(user)
    bearer_client = APIClient()
    bearer_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert bearer_client.get(HOT["positions:open"]).status_code == 200
    request = RequestFactory().get(HOT["positions:open"], HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_COOKIE="")
    page = caches["default"].get(_generate_cache_key(request, "GET", LEARNED_HEADERS, ""))
    # then the stored page carries G
    assert getattr(page, PAGE_GENERATION_ATTR) == generation


def test_a_page_miss_reads_the_generation_once_with_the_page(account, user, monkeypatch):
    # given the user's reads published, and a count of the counters' reads outside the fast path's MGET
    warm_user_reads(user.id)
    reads: list[int] = []
    original = caching.user_generation

    def counted(user_id: int):
        reads.append(user_id)
        return original(user_id)

    monkeypatch.setattr(caching, "user_generation", counted)
    # when a new token (a page miss) reads the status, which looks up three data entries
    response = bearer(user).get(HOT["reconciliation:status"])
    # then every lookup used the generation the fast path read with the page: no further counter read
    assert response.status_code == 200 and "Age" not in response
    assert reads == []


@override_settings(CACHES=LOCMEM, API_CACHE_TTL_S=5, API_DATA_TTL_S=5)
def test_a_late_publish_of_an_earlier_write_does_not_extend_the_hold_of_the_latest(account, user, cache_clock):
    # given a clock for the cache's expiry and the reads published at G
    cache.clear()
    warm_user_reads(user.id)
    published = user_generation(user.id)
    # when two writes bump G+1 and G+2 at t = 0, G+1's slow warm publishes at t = 4 and G+2's warm is lost
    first, second = caching._bump(user.id), caching._bump(user.id)
    assert (first, second) == (published + 1, published + 2)
    cache_clock.now += 4
    publish_generation(user.id, first)
    assert user_generation(user.id) == first
    # then readers still move to the latest 5 s after the last write (t = 5.1), not 5 s after the late publish
    cache_clock.now += 1.1
    assert user_generation(user.id) == second


@override_settings(CACHES=LOCMEM)
def test_a_publish_never_moves_readers_back_to_before_the_latest(user):
    cache.clear()
    # given readers on the latest generation 12 (nothing published: the hold expired)
    cache.set(generation_cache_key(user.id), 12)
    assert user_generation(user.id) == 12
    # when an earlier write's warm publishes 11 late
    publish_generation(user.id, 11)
    # then readers stay on 12 (they may already have shown 12's data)
    assert user_generation(user.id) == 12


@pytest.mark.redis
def test_a_redis_that_refuses_the_bump_queues_it(user, monkeypatch):
    # given Redis answering the bump's script with an error (READONLY after a failover, OOM)
    from redis.exceptions import ReadOnlyError

    from tradingsite.caching import pending_invalidations

    client = cache.client.get_client(write=True)

    def refuse(*args, **kwargs):
        raise ReadOnlyError("You can't write against a read only replica.")

    monkeypatch.setattr(client, "evalsha", refuse)
    monkeypatch.setattr(client, "eval", refuse)
    # when a write bumps the user's generation
    try:
        generation = caching._bump(user.id)
    finally:
        from tradingsite.cache_backend import breaker

        breaker.reset()
    # then the write is not failed: the bump is queued for the replay (the old code raised into on_commit)
    assert generation is None
    assert user.id in pending_invalidations.users()
    pending_invalidations.discard(user.id)


@override_settings(CACHES=LOCMEM)
def test_a_bump_that_races_a_reader_creating_the_counter_moves_past_the_readers_generation(user, monkeypatch):
    # given no counter, and a reader that creates it (generation 500) just before the write's bump does
    cache.clear()
    backend = caches["default"]  # the object behind django.core.cache.cache in this thread
    original_add = backend.add

    def reader_first(key, value, timeout=None):
        if key == generation_cache_key(user.id):
            original_add(key, 500, timeout)  # the reader's counter, under which it may cache pre-write data
        return original_add(key, value, timeout)

    monkeypatch.setattr(backend, "add", reader_first)
    # when the write bumps
    generation = caching._bump(user.id)
    # then the write's generation is past the reader's (the old code returned the reader's 500, so data the
    # reader cached before the write committed would have been served as current)
    assert generation == 501
    assert latest_generation(user.id) == 501
