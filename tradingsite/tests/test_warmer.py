"""The background cache warmer (``tradingsite.caching.Warmer``): warms off the writing request, drops a
warm whose generation is no longer current, coalesces a user's queued warms; warmed entries live
100–120 % of the data TTL so a write every TTL seconds keeps the reads hitting."""

from __future__ import annotations

import threading

import pytest
from django.core.cache import cache
from django.test import override_settings

from positions.selectors import open_positions
from tradingsite import caching
from tradingsite.caching import Warmer, bump_and_warm_user, warm_user_reads
from tradingsite.tests.test_write_through import LOCMEM, FakeClock, account, open_position  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture
def warms(monkeypatch):
    """Record ``warm_user_reads`` calls (user id, thread name) instead of computing the reads."""
    calls: list[tuple[int, str]] = []
    monkeypatch.setattr(
        caching,
        "warm_user_reads",
        lambda user_id, generation=None: calls.append((user_id, threading.current_thread().name)),
    )
    return calls


def test_a_submitted_warm_runs_in_a_warmer_thread(warms, monkeypatch):
    monkeypatch.setattr(caching, "latest_generation", lambda user_id: 10)
    warmer = Warmer()
    warmer.submit(7, 10)
    assert warmer.join(timeout=5)
    assert [user for user, _ in warms] == [7]
    assert warms[0][1].startswith("cache-warmer-")


def test_a_warm_for_an_older_generation_warms_the_latest_instead(monkeypatch):
    # given the user's latest generation is already 11 (a later write bumped it) when the warm for 10 runs
    warmed: list[tuple[int, int]] = []
    monkeypatch.setattr(caching, "_warm_counted", lambda user_id, generation: warmed.append((user_id, generation)))
    monkeypatch.setattr(caching, "latest_generation", lambda user_id: 11)
    warmer = Warmer()
    warmer.submit(7, 10)
    assert warmer.join(timeout=5)
    # then it warms (and publishes) 11: if each warm waited for the next write's, writes that keep coming
    # faster than warms start would leave nothing published (the old code dropped it)
    assert (warmed, warmer.dropped) == ([(7, 11)], 0)


def test_a_warm_whose_generation_is_published_already_is_dropped(monkeypatch):
    # given generation 11 is the latest and already published (another warm stored it)
    warmed: list[tuple[int, int]] = []
    monkeypatch.setattr(caching, "_warm_counted", lambda user_id, generation: warmed.append((user_id, generation)))
    monkeypatch.setattr(caching, "latest_generation", lambda user_id: 11)
    cache.set(caching.published_cache_key(7), 11, 5)
    warmer = Warmer()
    warmer.submit(7, 10)
    assert warmer.join(timeout=5)
    cache.delete(caching.published_cache_key(7))
    # then nothing is computed
    assert (warmed, warmer.dropped) == ([], 1)


@override_settings(CACHE_WARM_THREADS=1)
def test_warms_queued_for_one_user_run_once(monkeypatch):
    # given the only warmer thread busy with user 1
    monkeypatch.setattr(caching, "latest_generation", lambda user_id: 20)
    busy, release, calls = threading.Event(), threading.Event(), []

    def slow_warm(user_id: int, generation: int | None = None) -> None:
        calls.append(user_id)
        if user_id == 1:
            busy.set()
            release.wait(5)

    monkeypatch.setattr(caching, "warm_user_reads", slow_warm)
    warmer = Warmer()
    warmer.submit(1, 20)
    assert busy.wait(5)
    # when user 2's warm is submitted three times meanwhile (three writes)
    for generation in (18, 20, 19):
        warmer.submit(2, generation)
    release.set()
    assert warmer.join(timeout=5)
    # then user 2 is warmed once, for the newest generation submitted (20, the current one: not dropped)
    assert calls == [1, 2]
    assert warmer.dropped == 0


@override_settings(CACHE_WARM_IN_BACKGROUND=True)
def test_with_background_warming_a_write_does_not_warm_in_its_own_thread(user, warms, monkeypatch):
    background = Warmer()
    monkeypatch.setattr(caching, "warmer", background)
    bump_and_warm_user(user.id)
    assert background.join(timeout=5)
    assert [user_id for user_id, _ in warms] == [user.id]
    assert warms[0][1] != threading.current_thread().name


@override_settings(CACHE_WARM_IN_BACKGROUND=False)
def test_without_background_warming_the_write_warms_itself(user, warms):
    bump_and_warm_user(user.id)
    assert warms == [(user.id, threading.current_thread().name)]


@override_settings(CACHES=LOCMEM, API_CACHE_TTL_S=5, API_DATA_TTL_S=10)
def test_a_warmed_entry_lives_100_to_120_percent_of_the_data_ttl(account, user, cache_clock, django_assert_num_queries):  # noqa: F811
    # given a clock for the cache's expiry, an open position, and the reads warmed at t = 0
    cache.clear()
    open_position(user, ticket=910011, symbol="EURUSD")
    warm_user_reads(user.id)
    # when read just before the TTL (10 s): a computed entry (80–100 %) could be gone, a warmed one is not
    cache_clock.now += 9.99
    with django_assert_num_queries(0):
        assert open_positions(user_id=user.id, account_id=account.pk)["count"] == 1
    # then past 120 % of the TTL it has expired and the read computes (positions, account, instruments)
    cache_clock.now += 2.02
    with django_assert_num_queries(3):
        assert open_positions(user_id=user.id, account_id=account.pk)["count"] == 1
