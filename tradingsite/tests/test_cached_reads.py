"""Hot reads are declared once (tradingsite.caching.cached_read) and warmed in dependency order."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from tradingsite import caching


def test_the_three_hot_reads_are_declared_and_a_nested_read_is_warmed_after_what_it_nests():
    order = [read.route for read in caching.cached_reads_in_warm_order()]
    assert sorted(order) == ["guards:status", "positions:open", "reconciliation:status"]
    # the reconciliation status reads the cached open positions, so they are warmed first
    assert order.index("positions:open") < order.index("reconciliation:status")


def test_an_unknown_dependency_or_a_cycle_is_refused(monkeypatch):
    monkeypatch.setattr(caching, "_CACHED_READS", {})

    def compute(**kwargs):
        return {}

    caching.cached_read("a:read", warm_params=lambda user_id: [], after=("b:read",))(compute)
    with pytest.raises(ImproperlyConfigured, match="not declared"):
        caching.cached_reads_in_warm_order()
    caching.cached_read("b:read", warm_params=lambda user_id: [], after=("a:read",))(compute)
    with pytest.raises(ImproperlyConfigured, match="cycle"):
        caching.cached_reads_in_warm_order()


def test_the_route_name_is_the_data_namespace_and_the_page_label():
    from positions.selectors import OPEN_POSITIONS
    from tradingsite.observability import page_cached_views

    assert OPEN_POSITIONS.route == "positions:open" and "positions:open" in page_cached_views()
