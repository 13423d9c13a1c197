"""Property-based tests (hypothesis): random sync and registration sequences through the API (issue 15).

Two traders, each with their own MT5 account, post random snapshots (positions from a small ticket
pool, closing deals, quotes, equity moves, clocks that sometimes go backwards) and register random
positions, with now and then one invalid field (an overflowing decimal, a login past the BIGINT,
a quote time out of range or ahead of the snapshot, an off-step volume, ask below bid). After every
request:

* no 5xx, ever;
* a 4xx wrote nothing (every table's row count unchanged);
* a 201 sync wrote exactly one ``sync`` log row and one equity snapshot;
* the ledger's accounting holds: the open count of ``positions/open`` equals the status endpoint's;
  a position closed by deals has realized P&L = Σ (profit + swap + commission) of those deals
  (the closing rule of the reconciliation docs); closed positions stay closed; the peak is at least
  every equity reported since the first sync; 0 ≤ drawdown ≤ 100 % while equity ≥ 0, and the
  stored drawdown never leaves its column (≤ 999.9999).

The profile is deterministic (``derandomize=True``) and bounded, so the suite stays CI-sized on both
backends; the ``postgres`` variant runs the same property where ``numeric(p, s)`` is enforced.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal as D

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from rest_framework.test import APIClient

from conftest import access_token_for
from guards.models import EquitySnapshot, GuardState
from positions.models import Position
from positions.selectors import compute_open_positions
from reconciliation.models import ReconciliationLog
from reconciliation.selectors import compute_reconciliation_status
from reconciliation.tests.factories import (
    POSITIONS_URL,
    SYNC_URL,
    Clock,
    broker_position,
    deal,
    iso,
    quote,
    register_payload,
    sync_payload,
    table_counts,
)

PROFILE = settings(
    derandomize=True,
    max_examples=12,
    deadline=None,
    database=None,
    # No shrinking: a failing sequence has at most 8 steps, readable as generated, and CI stays bounded.
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
TICKETS = [1, 2, 3]
PRICES = ["1.09000", "1.09500", "1.10000", "1.20000"]
VOLUMES = ["0.01", "0.10", "1.00"]
MONEY = st.decimals(min_value=D("-50"), max_value=D("50"), places=2)
# One invalid field, applied to an otherwise valid body: must be a 400 that writes nothing.
CORRUPTIONS = [
    None,
    "equity_overflow",
    "login_overflow",
    "quote_time_1900",
    "quote_ahead",
    "volume_off_step",
    "ask_below_bid",
]

broker_row = st.fixed_dictionaries(
    {
        "ticket": st.sampled_from(TICKETS),
        "type": st.sampled_from([0, 1]),
        "volume": st.sampled_from(VOLUMES),
        "price_open": st.sampled_from(PRICES),
        "price_current": st.sampled_from(PRICES),
        "profit": MONEY,
    }
)
closing_deal = st.fixed_dictionaries(
    {
        "position_id": st.sampled_from(TICKETS),
        "reason": st.sampled_from([0, 3, 4, 5, 6]),
        "price": st.sampled_from(PRICES),
        "profit": MONEY,
        "swap": MONEY,
        "commission": MONEY,
    }
)
sync_step = st.fixed_dictionaries(
    {
        "kind": st.just("sync"),
        "trader": st.sampled_from([0, 1]),
        "advance_s": st.sampled_from([-30, 0, 5, 60]),
        "positions": st.one_of(st.none(), st.lists(broker_row, max_size=3, unique_by=lambda row: row["ticket"])),
        "deals": st.lists(closing_deal, max_size=2),
        "equity": st.decimals(min_value=D("0"), max_value=D("20000"), places=2),
        "bid": st.sampled_from(["1.09000", "1.10000", "11.00000", "1.00000"]),
        "corrupt": st.sampled_from(CORRUPTIONS),
    }
)
register_step = st.fixed_dictionaries(
    {
        "kind": st.just("register"),
        "trader": st.sampled_from([0, 1]),
        "ticket": st.sampled_from(TICKETS),
        "side": st.sampled_from(["buy", "sell"]),
        "volume": st.sampled_from([*VOLUMES, "0.015", "1e+1000000"]),
        "requested_price": st.sampled_from(PRICES),
    }
)
steps = st.lists(st.one_of(sync_step, register_step), min_size=1, max_size=8)


class Trader:
    """One user with their own client, broker clock and the equities they reported."""

    def __init__(self, django_user_model, name: str):
        self.user = django_user_model.objects.create_user(username=name, password="x")
        self.client = APIClient()
        self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token_for(self.user)}")
        self.clock = Clock()
        self.equities: list[D] = []


def sync_body(trader: Trader, step: dict) -> dict:
    broker_time = trader.clock.now + timedelta(seconds=step["advance_s"])
    if step["advance_s"] > 0:
        trader.clock.now = broker_time
    positions = None
    if step["positions"] is not None:
        positions = [
            broker_position(
                row["ticket"], type=row["type"], volume=row["volume"], price_open=row["price_open"],
                price_current=row["price_current"], profit=row["profit"],
            )
            for row in step["positions"]
        ]  # fmt: skip
    reported = {row["ticket"] for row in step["positions"] or []}
    deals = [
        deal(d["position_id"], ticket=d["position_id"] * 100 + i, reason=d["reason"], price=d["price"],
             profit=d["profit"], swap=d["swap"], commission=d["commission"])
        for i, d in enumerate(step["deals"])
        if d["position_id"] not in reported  # the broker reports a closed position's deals, not the position
    ]  # fmt: skip
    body = sync_payload(
        broker_time=broker_time,
        positions=positions,
        deals=deals,
        quotes=[quote("EURUSD", step["bid"], D(step["bid"]) + D("0.00010"))],
        balance=step["equity"],
        equity=step["equity"],
    )
    corrupt = step["corrupt"]
    if corrupt == "equity_overflow":
        body["account"]["equity"] = "1e+1000000"
    elif corrupt == "login_overflow":
        body["account"]["login"] = 2**63
    elif corrupt == "quote_time_1900":
        body["quotes"][0]["time"] = "1900-01-01T00:00:00Z"
    elif corrupt == "quote_ahead":
        body["quotes"][0]["time"] = iso(broker_time + timedelta(minutes=6))
    elif corrupt == "volume_off_step":
        body["positions"] = [broker_position(1, volume="0.015")]
    elif corrupt == "ask_below_bid":
        body["quotes"][0]["ask"] = "0.5"
    return body


def check_invariants(trader: Trader, sync_id: str | None, deals_sent: dict[int, list[dict]]) -> None:
    user_id = trader.user.pk
    book = compute_open_positions(user_id=user_id)
    status = compute_reconciliation_status(user_id=user_id)
    assert (
        book["count"]
        == status["open_positions_count"]
        == Position.objects.filter(user_id=user_id, status="open").count()
    )
    if sync_id is not None:
        for row in ReconciliationLog.objects.filter(user_id=user_id, sync_id=sync_id, event_type="close"):
            assert row.position_id is not None  # a close row names its position
            position = Position.objects.get(pk=row.position_id)
            if position.ticket in deals_sent:
                money = sum((d["profit"] + d["swap"] + d["commission"] for d in deals_sent[position.ticket]), D(0))
                assert position.realized_pnl == money, (position.ticket, position.realized_pnl, money)
    state = GuardState.objects.filter(user_id=user_id).first()
    if state is not None:
        assert state.peak_equity >= max(trader.equities)
    for snapshot in EquitySnapshot.objects.filter(user_id=user_id):
        assert D("0") <= snapshot.drawdown_pct <= D("999.9999")
        if snapshot.equity >= 0:
            assert snapshot.drawdown_pct <= D("100")


def run_sequence(django_user_model, sequence: list[dict]) -> None:
    run = uuid.uuid4().hex[:8]
    traders = [Trader(django_user_model, f"trader{index}-{run}") for index in range(2)]
    closed_before: set[int] = set()
    for step in sequence:
        trader = traders[step["trader"]]
        before = table_counts()
        syncs_before = ReconciliationLog.objects.filter(user=trader.user, event_type="sync").count()
        snapshots_before = EquitySnapshot.objects.filter(user=trader.user).count()
        deals_sent: dict[int, list[dict]] = {}
        if step["kind"] == "sync":
            body = sync_body(trader, step)
            for d in body.get("deals") or []:
                deals_sent.setdefault(d["position_id"], []).append(
                    {k: D(d[k]) for k in ("profit", "swap", "commission")}
                )
            response = trader.client.post(SYNC_URL, body, format="json")
        else:
            body = register_payload(
                step["ticket"], side=step["side"], volume=step["volume"], requested_price=step["requested_price"]
            )
            response = trader.client.post(POSITIONS_URL, body, format="json")
        assert response.status_code < 500, (step, response.content)
        if response.status_code >= 400:
            assert table_counts() == before, (step, response.status_code, response.content)
            continue
        sync_id = None
        if step["kind"] == "sync":
            assert response.status_code == 201, (step, response.content)
            trader.equities.append(D(body["account"]["equity"]))
            sync_id = body["sync_id"]
            assert ReconciliationLog.objects.filter(user=trader.user, event_type="sync").count() == syncs_before + 1
            assert EquitySnapshot.objects.filter(user=trader.user).count() == snapshots_before + 1
        check_invariants(trader, sync_id, deals_sent)
        closed_now = set(Position.objects.filter(status="closed").values_list("pk", flat=True))
        assert closed_before <= closed_now  # closed positions stay closed
        closed_before = closed_now
    for trader in traders:
        if trader.equities:
            check_invariants(trader, None, {})


@pytest.mark.django_db
@PROFILE
@given(sequence=steps)
def test_random_sync_and_registration_sequences_keep_the_ledger_consistent(django_user_model, sequence):
    run_sequence(django_user_model, sequence)


@pytest.mark.postgres
@pytest.mark.django_db
@PROFILE
@given(sequence=steps)
def test_random_sequences_on_postgresql(django_user_model, sequence):
    run_sequence(django_user_model, sequence)
