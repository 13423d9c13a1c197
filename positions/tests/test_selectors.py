"""positions selectors: open positions valued, scoped to the user, cached per generation."""

from decimal import Decimal

import pytest
from django.test import override_settings

from accounts.models import Account
from guards.tests.read_factories import EquitySnapshotFactory
from positions.models import Position
from positions.selectors import compute_open_positions, open_positions, position_history
from positions.tests.read_factories import PositionFactory, QuoteFactory
from positions.valuation import render_2dp
from tradingsite.caching import bump_user_generation

pytestmark = pytest.mark.django_db

D = Decimal


@pytest.fixture
def book(user):
    """the worked examples as one USD account with 10,000 equity, plus one position with no rate."""
    EquitySnapshotFactory(user=user, currency="USD", equity=D("10000.00"))
    QuoteFactory(user=user, symbol="USDJPY", bid=D("150.49"), ask=D("150.51"))  # mid 150.50
    return {
        "xau": PositionFactory(
            user=user,
            symbol="XAUUSD",
            side="buy",
            volume=D("0.10"),
            price_open=D("1950.50"),
            price_current=D("1955.75"),
            profit=D("52.50"),
        ),
        "eur": PositionFactory(
            user=user, symbol="EURUSD", side="sell", volume=D("1.00"), price_open=D("1.0950"), price_current=D("1.0945")
        ),
        "jpy": PositionFactory(
            user=user, symbol="USDJPY", side="buy", volume=D("1.00"), price_open=D("150.00"), price_current=D("150.50")
        ),
        # EURGBP's P&L is in GBP; the user has no GBPUSD/USDGBP quote → unvalued
        "gbp": PositionFactory(
            user=user,
            symbol="EURGBP",
            side="buy",
            volume=D("1.00"),
            price_open=D("0.86000"),
            price_current=D("0.86100"),
            matched=False,
            divergence_reasons=["entry_slippage"],
        ),
    }


def test_open_positions_values_every_worked_example(user, book):
    # when
    data = compute_open_positions(user_id=user.id)
    by_symbol = {p["symbol"]: p for p in data["positions"]}

    # then XAUUSD: 5.25 × 0.10 × 100 = 52.50 USD, 5.25 / 1950.50 × 100 = 0.269… %,
    # 5.25 / 0.10 (the gold pip) = 52.5 pips
    assert render_2dp(by_symbol["XAUUSD"]["unrealized_pnl"]) == D("52.50")
    assert render_2dp(by_symbol["XAUUSD"]["unrealized_pnl_pct"]) == D("0.27")
    assert by_symbol["XAUUSD"]["pnl_pips"] == D("52.5")
    # EURUSD sell: −1 × −0.0005 × 1 × 100,000 = +50.00 USD, +5 pips
    assert render_2dp(by_symbol["EURUSD"]["unrealized_pnl"]) == D("50.00")
    assert by_symbol["EURUSD"]["pnl_pips"] == D("5")
    # USDJPY: 0.50 × 100,000 = 50,000 JPY / 150.50 = 332.2259… USD
    assert render_2dp(by_symbol["USDJPY"]["unrealized_pnl"]) == D("332.23")
    # EURGBP: no rate → None, counted as unvalued
    assert by_symbol["EURGBP"]["unrealized_pnl"] is None
    assert data["unvalued_positions"] == 1
    # totals: 52.50 + 50.00 + 332.2259… = 434.7259… → 434.73; / 10,000 × 100 = 4.347… → 4.35 %
    assert data["count"] == 4
    assert data["currency"] == "USD"
    assert render_2dp(data["total_unrealized_pnl"]) == D("434.73")
    assert render_2dp(data["total_unrealized_pnl_pct"]) == D("4.35")
    # the broker's own profit is returned beside the computed value
    assert by_symbol["XAUUSD"]["profit"] == D("52.50")


def test_open_positions_excludes_other_users_and_non_open_rows(user, other_user, book):
    # given another user's open position, and this user's pending and closed rows
    PositionFactory(user=other_user, symbol="XAUUSD")
    PositionFactory(user=user, status=Position.Status.PENDING, price_open=None, price_current=None)
    PositionFactory(user=user, status=Position.Status.CLOSED)

    # when
    data = compute_open_positions(user_id=user.id)

    # then only the four open rows of this user
    assert sorted(p["id"] for p in data["positions"]) == sorted(p.id for p in book.values())


def test_open_positions_symbol_filter_is_case_insensitive(user, book):
    # when
    data = open_positions(user_id=user.id, symbol=" xauusd ")
    # then
    assert [p["id"] for p in data["positions"]] == [book["xau"].id]
    assert data["count"] == 1


def test_open_positions_before_the_first_sync_has_no_currency_and_no_pct(user):
    # given a position but no sync of its account yet (no account currency, no equity)
    PositionFactory(user=user, symbol="EURUSD")
    # when
    data = compute_open_positions(user_id=user.id)
    # then nothing can be converted and the percentage is null
    assert data["currency"] is None
    assert data["unvalued_positions"] == 1
    assert data["total_unrealized_pnl"] == D("0")
    assert data["total_unrealized_pnl_pct"] is None


def test_open_positions_read_the_currency_and_equity_the_account_row_shows(user):
    # given an account whose latest sync left it in GBP at 8,000.00 equity (the Account row; no snapshot row:
    # positions sit below guards and read the account, not the guards' snapshots)
    from django.utils import timezone

    from accounts.tests.factories import default_account

    account = default_account(user)
    Account.objects.filter(pk=account.pk).update(
        currency="GBP", equity=D("8000.00"), balance=D("8100.00"), last_sync_at=timezone.now()
    )
    # and an XAUUSD buy whose P&L is in USD, with a GBPUSD quote at mid 1.25 (bid 1.2499, ask 1.2501)
    QuoteFactory(user=user, symbol="GBPUSD", bid=D("1.2499"), ask=D("1.2501"))
    PositionFactory(user=user, symbol="XAUUSD", side="buy", volume=D("0.10"), price_open=D("1950.50"),
                    price_current=D("1955.75"))  # fmt: skip
    # when
    data = compute_open_positions(user_id=user.id, account_id=account.pk)
    # then it is valued in GBP: 5.25 × 0.10 × 100 = 52.50 USD / 1.25 = 42.00 GBP; 42 / 8,000 × 100 = 0.525 → 0.53 %
    assert data["currency"] == "GBP"
    assert render_2dp(data["total_unrealized_pnl"]) == D("42.00")
    assert render_2dp(data["total_unrealized_pnl_pct"]) == D("0.53")


def test_open_positions_queries_on_a_miss_and_none_on_a_hit(user, book, django_assert_num_queries):
    # when / then a miss: positions, latest snapshot, instruments, quotes (JPY and GBP differ from USD)
    with django_assert_num_queries(4):
        first = open_positions(user_id=user.id)
    # and a hit runs no SQL and returns the same data, as of the time of the read
    with django_assert_num_queries(0):
        second = open_positions(user_id=user.id)
    assert {**second, "as_of": None} == {**first, "as_of": None}
    assert second["as_of"] >= first["as_of"]


@override_settings(API_CACHE_TTL_S=60)
def test_generation_bump_makes_a_change_visible_at_once(user, book):
    # given a cached result
    assert open_positions(user_id=user.id)["count"] == 4
    # when a position closes and the writer bumps the generation (what sync_ingest does on commit)
    Position.objects.filter(pk=book["eur"].pk).update(status=Position.Status.CLOSED)
    stale = open_positions(user_id=user.id)
    bump_user_generation(user.id)
    # then the cached value was still served before the bump, the new one right after it
    assert stale["count"] == 4
    assert open_positions(user_id=user.id)["count"] == 3


def test_cached_data_is_per_user(user, other_user, book):
    # given the user's result is cached
    open_positions(user_id=user.id)
    # when the other user asks
    data = open_positions(user_id=other_user.id)
    # then they get their own (empty) book
    assert data["count"] == 0
    assert data["positions"] == []


def test_position_history_is_scoped_and_newest_first(user, other_user):
    # given
    older = PositionFactory(user=user)
    newer = PositionFactory(user=user, status=Position.Status.CLOSED)
    PositionFactory(user=other_user)
    # when / then
    assert list(position_history(user_id=user.id)) == [newer, older]
