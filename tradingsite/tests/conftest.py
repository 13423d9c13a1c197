"""Fixtures shared by the cache tests of ``tradingsite``."""

import pytest
from django.core.cache.backends import base as cache_base
from django.core.cache.backends import locmem

from tradingsite.tests.test_write_through import FakeClock


@pytest.fixture
def cache_clock(monkeypatch) -> FakeClock:
    """A clock for the in-process cache's expiry (the times ``set`` stores and ``get`` checks); move it
    with ``cache_clock.now += seconds``. The test empties the cache itself, after its settings apply."""
    clock = FakeClock()
    monkeypatch.setattr(locmem, "time", clock)  # expiry checks
    monkeypatch.setattr(cache_base, "time", clock)  # expiry times of set
    return clock
