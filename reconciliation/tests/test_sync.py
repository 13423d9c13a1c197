"""Sync ingestion end to end: matches, divergences, closes, idempotency, ordering, null vs []."""

import uuid
from datetime import timedelta
from decimal import Decimal as D

import pytest

from guards.models import EquitySnapshot
from positions.models import Instrument, Position, Quote
from reconciliation.models import ReconciliationLog
from reconciliation.tests.factories import (
    SERVER,
    SYNC_URL,
    Clock,
    broker_position,
    deal,
    ingest,
    quote,
    register,
    sync_payload,
    table_counts,
)

pytestmark = pytest.mark.django_db


def logs(user, **filters):
    return list(ReconciliationLog.objects.filter(user=user, **filters).order_by("id"))


def position(user, ticket):
    return Position.objects.get(user=user, ticket=ticket)


# ---------------------------------------------------------------------------------------------
# Matching and divergences
# ---------------------------------------------------------------------------------------------
def test_sync_confirms_a_matching_position_and_logs_one_match(auth_client, user):
    # given a pending buy 1.00 EURUSD @ 1.09500, SL 1.09000, TP 1.10000
    register(user, 1, sl="1.09000", tp="1.10000")
    clock = Clock()
    payload = sync_payload(
        broker_time=clock.tick(),
        positions=[
            broker_position(1, price_open="1.09510", price_current="1.09560", sl="1.09000", tp="1.10000",
                            swap="-0.40", profit="50.00", time=1764496805)
        ],
        quotes=[quote("EURUSD", "1.09560", "1.09570")],
    )  # fmt: skip
    # when
    response = auth_client.post(SYNC_URL, payload)
    # then: 1.09510 − 1.09500 = 1 pip ≤ 2 → matched
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["counts"]["positions_seen"] == 1 and body["counts"]["matched"] == 1
    assert body["divergences"] == []
    row = position(user, 1)
    assert (row.status, row.matched, row.price_open, row.price_current) == ("open", True, D("1.09510"), D("1.09560"))
    assert (row.swap, row.profit) == (D("-0.40"), D("50.00"))
    assert row.opened_at.timestamp() == 1764496805
    assert [log.event_type for log in logs(user)] == ["match", "sync"]
    # a second identical snapshot writes only its sync row (logging by transition)
    auth_client.post(SYNC_URL, {**payload, "sync_id": str(uuid.uuid4()), "broker_time": clock.tick().isoformat()})
    assert [log.event_type for log in logs(user)] == ["match", "sync", "sync"]


def test_sync_partial_fill_and_entry_slippage_are_logged_with_deltas(auth_client, user):
    # given a pending buy 1.00 @ 1.09500
    register(user, 1)
    # when the broker filled 0.60 lots at 1.09535 (+3.50 pips)
    response = auth_client.post(
        SYNC_URL,
        sync_payload(broker_time=Clock().tick(), positions=[broker_position(1, volume="0.60", price_open="1.09535")]),
    )
    # then
    body = response.json()
    assert response.status_code == 201
    assert {(d["reason"], d.get("delta_lots"), d.get("delta_pips")) for d in body["divergences"]} == {
        ("partial_fill", "-0.40", None),  # 0.60 − 1.00
        ("entry_slippage", None, "3.50"),  # (1.09535 − 1.09500) / 0.0001
    }
    divergence_rows = logs(user, event_type="divergence")
    assert [r.divergence_reason for r in divergence_rows] == ["partial_fill", "entry_slippage"]
    assert divergence_rows[1].slippage_pips == D("3.50")
    assert divergence_rows[0].details["delta_lots"] == "-0.40"
    row = position(user, 1)
    assert row.matched is False and row.divergence_reasons == ["partial_fill", "entry_slippage"]
    assert row.volume == D("1.00")  # the ledger keeps the bot's volume; the broker's is in the details
    assert row.divergence_details["partial_fill"]["actual"] == "0.60"
    assert not logs(user, event_type="match")


def test_sync_sell_side_slippage_sign(auth_client, user):
    # a sell requested at 1.09500 filled at 1.09470: (1.09470 − 1.09500) / 0.0001 = −3.00 pips, adverse for a sell
    register(user, 2, side="sell")
    auth_client.post(
        SYNC_URL,
        sync_payload(broker_time=Clock().tick(), positions=[broker_position(2, type=1, price_open="1.09470")]),
    )
    (row,) = logs(user, event_type="divergence")
    assert (row.divergence_reason, row.slippage_pips, row.side) == ("entry_slippage", D("-3.00"), "sell")
    assert row.details["adverse"] is True


def test_divergence_persisting_over_50_syncs_is_logged_twice(user):
    # given a broker SL of 1.08500 vs the bot's 1.09000 ((1.08500 − 1.09000) / 0.0001 = −50 pips) for 50 syncs
    register(user, 1, sl="1.09000")
    clock = Clock()
    for _ in range(50):
        ingest(user, sync_payload(broker_time=clock.tick(), positions=[broker_position(1, sl="1.08500")]))
    # when the SL is put back
    ingest(user, sync_payload(broker_time=clock.tick(), positions=[broker_position(1, sl="1.09000")]))
    # then: one row when it appeared, one when it resolved; 51 sync rows
    transitions = logs(user, event_type__in=["divergence", "divergence_resolved"])
    assert [(r.event_type, r.divergence_reason) for r in transitions] == [
        ("divergence", "sl_mismatch"),
        ("divergence_resolved", "sl_mismatch"),
    ]
    assert transitions[0].details["delta_pips"] == "-50.00"
    assert transitions[1].matched is True
    assert len(logs(user, event_type="sync")) == 51
    assert position(user, 1).matched is True and position(user, 1).divergence_reasons == []


def test_unexpected_position_at_broker_creates_a_broker_origin_row(auth_client, user):
    # given nothing registered; the broker reports a manual XAUUSD trade
    clock = Clock()
    payload = sync_payload(
        broker_time=clock.tick(),
        positions=[broker_position(900, symbol="XAUUSD", type="sell", volume="0.20", price_open="1950.00",
                                   price_current="1948.00", profit="40.00")],
    )  # fmt: skip
    # when
    body = ingest(user, payload).summary
    # then
    row = position(user, 900)
    assert (row.origin, row.status, row.side, row.volume, row.requested_price) == (
        "broker", "open", "sell", D("0.20"), None
    )  # fmt: skip
    assert row.divergence_reasons == ["unexpected_at_broker"] and row.matched is False
    assert body["counts"]["created_from_broker"] == 1
    assert [(d["ticket"], d["reason"], d["new"]) for d in body["divergences"]] == [(900, "unexpected_at_broker", True)]
    # and it stays one divergence row over later syncs
    ingest(user, {**payload, "sync_id": str(uuid.uuid4()), "broker_time": clock.tick().isoformat()})
    assert len(logs(user, event_type="divergence")) == 1
    assert Position.objects.filter(user=user).count() == 1


def test_missing_pending_position_is_flagged_once_after_sync_stale_seconds(user):
    # given a pending position registered at T (sync_stale_seconds = 60 by default)
    pending = register(user, 1)
    registered = pending.created_at
    # when a flat snapshot arrives 30 s later, then 60 s later, then 90 s later
    ingest(user, sync_payload(broker_time=registered + timedelta(seconds=30), positions=[]))
    assert position(user, 1).divergence_reasons == []  # 30 s < 60 s: too early to call it missing
    ingest(user, sync_payload(broker_time=registered + timedelta(seconds=60), positions=[]))
    ingest(user, sync_payload(broker_time=registered + timedelta(seconds=90), positions=[]))
    # then: flagged once (60 ≥ 60), still pending
    rows = logs(user, event_type="divergence")
    assert [r.divergence_reason for r in rows] == ["missing_at_broker"]
    assert rows[0].details["absent_seconds"] == 60
    assert position(user, 1).status == "pending"
    # and when it finally shows up, the divergence resolves and the position opens
    ingest(user, sync_payload(broker_time=registered + timedelta(seconds=120), positions=[broker_position(1)]))
    assert [r.divergence_reason for r in logs(user, event_type="divergence_resolved")] == ["missing_at_broker"]
    assert position(user, 1).status == "open" and position(user, 1).matched is True


# ---------------------------------------------------------------------------------------------
# Closes
# ---------------------------------------------------------------------------------------------
def open_position(user, clock, ticket=1, **broker_fields):
    register(user, ticket, sl=broker_fields.get("sl", "1.09000"), tp=broker_fields.get("tp", "1.10000"))
    fields = {"sl": "1.09000", "tp": "1.10000", **broker_fields}
    ingest(user, sync_payload(broker_time=clock.tick(), positions=[broker_position(ticket, **fields)]))


@pytest.mark.parametrize(
    ("mt5_reason", "close_reason"),
    [(4, "sl_hit"), (5, "tp_hit"), (6, "stop_out"), (0, "closed_manually"), (1, "closed_manually"),
     (2, "closed_manually"), (3, "closed_by_bot"), (7, "closed_externally")],
)  # fmt: skip
def test_close_is_decided_by_the_closing_deal(user, mt5_reason, close_reason):
    # given an open buy 1.00 EURUSD
    clock = Clock()
    open_position(user, clock, price_current="1.09600", profit="100.00")
    # when it vanishes and the sync carries its closing deal
    closing = deal(1, reason=mt5_reason, price="1.09120", profit="-38.00", swap="-1.20", commission="-3.50")
    body = ingest(user, sync_payload(broker_time=clock.tick(), positions=[], deals=[closing])).summary
    # then: realized = −38.00 + (−1.20) + (−3.50) = −42.70, close price from the deal
    row = position(user, 1)
    assert (row.status, row.close_reason, row.close_price, row.realized_pnl) == (
        "closed", close_reason, D("1.09120"), D("-42.70")
    )  # fmt: skip
    (close_log,) = logs(user, event_type="close")
    assert (close_log.close_reason, close_log.realized_pnl, close_log.details["source"]) == (
        close_reason, D("-42.70"), "deal"
    )  # fmt: skip
    assert body["closed"] == [
        {"ticket": 1, "identifier": 1, "symbol": "EURUSD", "close_reason": close_reason,
         "close_price": "1.09120000", "realized_pnl": "-42.70", "realized_pnl_inferred": False, "source": "deal"}
    ]  # fmt: skip


def test_close_by_deal_sums_several_closing_deals_and_takes_the_last_price(user):
    clock = Clock()
    open_position(user, clock)
    t = clock.tick()
    deals = [
        deal(1, ticket=11, reason=3, price="1.09700", profit="10.00", volume="0.40", time=t - timedelta(seconds=3)),
        deal(
            1, ticket=12, reason=5, price="1.10000", profit="30.00", commission="-1.00", time=t - timedelta(seconds=1)
        ),
        # an "in" deal (entry 0) never closes anything
        {**deal(1, ticket=13, reason=3, price="1.09000"), "entry": 0},
    ]
    ingest(user, sync_payload(broker_time=t, positions=[], deals=deals))
    row = position(user, 1)
    # 10.00 + 30.00 − 1.00 = 39.00; reason and price of the last deal (TP)
    assert (row.close_reason, row.close_price, row.realized_pnl) == ("tp_hit", D("1.10000"), D("39.00"))
    assert row.closed_at == t - timedelta(seconds=1)
    # the ledger's last view is the close: last deal's price, deals' profit 10.00 + 30.00 = 40.00, swap 0
    assert (row.price_current, row.profit, row.swap) == (D("1.10000"), D("40.00"), D("0.00"))


@pytest.mark.parametrize(
    ("last_price", "expected"),
    [("1.09995", "tp_hit"), ("1.09005", "sl_hit"), ("1.09500", "closed_externally")],
)
def test_close_without_deal_is_inferred_from_the_last_seen_price(user, last_price, expected):
    # given an open buy with SL 1.09000 and TP 1.10000, last seen at last_price with profit 12.34
    clock = Clock()
    open_position(user, clock, price_current=last_price, profit="12.34")
    # when the next snapshot is flat and carries no deal
    t = clock.tick()
    ingest(user, sync_payload(broker_time=t, positions=[]))
    # then: tp within 1 pip (1.09995 ≥ 1.09990), sl within 1 pip (1.09005 ≤ 1.09010), else external
    row = position(user, 1)
    assert (row.status, row.close_reason, row.close_price, row.realized_pnl, row.closed_at) == (
        "closed", expected, D(last_price), D("12.34"), t
    )  # fmt: skip
    assert logs(user, event_type="close")[0].details["source"] == "inferred"


def test_sell_tp_hit_inferred(user):
    clock = Clock()
    register(user, 5, side="sell", sl="1.10000", tp="1.09000")
    ingest(
        user,
        sync_payload(
            broker_time=clock.tick(),
            positions=[broker_position(5, type=1, sl="1.10000", tp="1.09000", price_current="1.09008")],
        ),
    )
    ingest(user, sync_payload(broker_time=clock.tick(), positions=[]))
    # sell: 1.09008 ≤ 1.09000 + 0.0001 → tp_hit
    assert position(user, 5).close_reason == "tp_hit"


def test_pending_position_closed_between_syncs_is_closed_by_its_deal(user):
    register(user, 8)
    ingest(
        user,
        sync_payload(broker_time=Clock().tick(), positions=[], deals=[deal(8, reason=0, price="1.09600", profit="10")]),
    )
    row = position(user, 8)
    assert (row.status, row.close_reason, row.realized_pnl) == ("closed", "closed_manually", D("10.00"))


# ---------------------------------------------------------------------------------------------
# Unknown vs flat, idempotency, ordering
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("omit", [False, True])
def test_positions_null_or_absent_leaves_the_ledger_untouched(user, omit):
    # given an open position
    clock = Clock()
    open_position(user, clock)
    before = Position.objects.get(user=user, ticket=1)
    # when the worker could not read positions (null or absent)
    body = ingest(
        user,
        sync_payload(
            broker_time=clock.tick(), positions=None, omit_positions=omit, equity="9900.00",
            quotes=[quote("EURUSD", "1.09700", "1.09710")],
        ),
    ).summary  # fmt: skip
    # then: position untouched, account and quotes processed, sync row says so
    after = Position.objects.get(user=user, ticket=1)
    assert (after.status, after.updated_at, after.last_synced_at) == ("open", before.updated_at, before.last_synced_at)
    assert body["positions_known"] is False and "unknown" in body["message"]
    sync_row = logs(user, event_type="sync")[-1]
    assert sync_row.status == "warning" and sync_row.details["positions_known"] is False
    assert EquitySnapshot.objects.filter(user=user).latest("id").equity == D("9900.00")
    assert EquitySnapshot.objects.filter(user=user).latest("id").open_positions == 1
    assert Quote.objects.get(user=user, symbol="EURUSD").bid == D("1.09700")


def test_positions_empty_list_means_flat_and_closes(user):
    clock = Clock()
    open_position(user, clock)
    body = ingest(user, sync_payload(broker_time=clock.tick(), positions=[])).summary
    assert body["positions_known"] is True and body["counts"]["closed"] == 1
    assert position(user, 1).status == "closed"


def test_replaying_a_sync_id_returns_the_stored_summary_and_writes_nothing(auth_client, user):
    # given an accepted sync
    register(user, 1)
    payload = sync_payload(
        broker_time=Clock().tick(), positions=[broker_position(1, price_open="1.09540")],
        quotes=[quote("EURUSD", "1.09540", "1.09550")],
    )  # fmt: skip
    first = auth_client.post(SYNC_URL, payload)
    assert first.status_code == 201
    before = table_counts()
    # when the same sync_id is posted again (even with other content)
    replay = auth_client.post(SYNC_URL, {**payload, "positions": []})
    # then
    assert replay.status_code == 200
    assert replay.json() == first.json()
    assert table_counts() == before
    assert position(user, 1).status == "open"


def test_out_of_order_broker_time_is_409_and_writes_nothing(auth_client, user):
    # given an accepted sync at T
    clock = Clock()
    t = clock.tick()
    assert auth_client.post(SYNC_URL, sync_payload(broker_time=t, positions=[])).status_code == 201
    before = table_counts()
    # when a sync at T − 1 s arrives
    response = auth_client.post(SYNC_URL, sync_payload(broker_time=t - timedelta(seconds=1), positions=[]))
    # then
    assert response.status_code == 409
    assert "older" in response.json()["detail"]
    assert table_counts() == before
    # and the same broker time is accepted (not older)
    assert auth_client.post(SYNC_URL, sync_payload(broker_time=t, positions=[])).status_code == 201


def test_sync_id_is_generated_when_absent(user):
    payload = sync_payload(broker_time=Clock().tick(), positions=[])
    del payload["sync_id"]
    body = ingest(user, payload).summary
    assert uuid.UUID(body["sync_id"])
    assert logs(user, event_type="sync")[0].sync_id == uuid.UUID(body["sync_id"])


def test_syncs_of_two_users_are_independent(user, other_user):
    clock = Clock()
    t = clock.tick()
    ingest(user, sync_payload(broker_time=t, positions=[]))
    # the other user's older broker time is not out of order: ordering is per user
    ingest(other_user, sync_payload(broker_time=t - timedelta(minutes=5), positions=[]))
    assert ReconciliationLog.objects.filter(event_type="sync").count() == 2


# ---------------------------------------------------------------------------------------------
# Quotes, symbol specs, summary
# ---------------------------------------------------------------------------------------------
def test_quotes_are_upserted_latest_per_symbol(user):
    clock = Clock()
    t1 = clock.tick()
    ingest(user, sync_payload(broker_time=t1, positions=[], quotes=[quote("GBPUSD", "1.26930", "1.26950")]))
    t2 = clock.tick()
    ingest(
        user,
        sync_payload(
            broker_time=t2, positions=[],
            quotes=[quote("GBPUSD", "1.27000", "1.27020"), quote("EURGBP", "0.86000", "0.86010", time=t2)],
        ),
    )  # fmt: skip
    rows = {q.symbol: q for q in Quote.objects.filter(user=user)}
    assert set(rows) == {"GBPUSD", "EURGBP"}
    assert (rows["GBPUSD"].bid, rows["GBPUSD"].ask, rows["GBPUSD"].time) == (D("1.27000"), D("1.27020"), t2)


def test_symbol_specs_update_the_instrument(user):
    # given MT5 symbol specs for a broker-suffixed gold and a changed contract size for XAGUSD
    specs = [
        {"name": "XAUUSD.m", "trade_contract_size": 100, "digits": 2, "point": 0.01, "currency_base": "XAU",
         "currency_profit": "USD"},
        {"symbol": "XAGUSD", "trade_contract_size": "1000", "digits": 3, "point": "0.001", "currency_base": "XAG",
         "currency_profit": "USD"},
    ]  # fmt: skip
    payload = sync_payload(
        broker_time=Clock().tick(), positions=[broker_position(5, symbol="XAUUSD.m", price_open="1950.00")]
    )
    payload["symbols"] = specs
    # when
    ingest(user, payload)
    # then the rows are the account's own (its trade server recorded); the shipped default XAGUSD
    # (5,000 oz) is untouched
    gold = Instrument.objects.get(account__user=user, symbol="XAUUSD.M")
    assert (gold.contract_size, gold.pip_size, gold.currency_profit, gold.server) == (
        D("100"),
        D("0.10"),  # the gold pip (positions.pips), not the 2-digit quote's point 0.01
        "USD",
        SERVER,
    )
    assert Instrument.objects.get(account__user=user, symbol="XAGUSD").contract_size == D("1000")
    assert Instrument.objects.get(account=None, symbol="XAGUSD").contract_size == D("5000")
    assert position(user, 5).origin == "broker"


def test_sync_summary_reports_guard_levels_and_duration(auth_client, user):
    body = auth_client.post(
        SYNC_URL, sync_payload(broker_time=Clock().tick(), positions=[], balance="10000.00", equity="8500.00")
    ).json()
    # first snapshot: peak = max(10000, 8500) = 10000; (10000 − 8500) / 10000 × 100 = 15 % → warning
    assert body["guards"]["drawdown"]["level"] == "warning"
    assert body["guards"]["drawdown"]["drawdown_pct"] == "15.0000"
    assert body["guards"]["any_positions_should_close"] is False
    assert isinstance(body["duration_ms"], int)
    sync_row = logs(user, event_type="sync")[0]
    assert sync_row.duration_ms == body["duration_ms"] and sync_row.broker_time is not None


# ---------------------------------------------------------------------------------------------
# Batch ingestion (a worker's backlog; seed_demo) = the same syncs one by one
# ---------------------------------------------------------------------------------------------
def _story(clock):
    """Six syncs touching every path: confirm with slippage, SL change, manual trade, close by deal,
    inferred close, a spread episode and a drawdown episode."""
    t = [clock.tick() for _ in range(6)]
    gold = [quote("XAUUSD", "1950.00", "1950.30")]
    wide = [quote("XAUUSD", "1950.00", "1969.50")]
    slipped = broker_position(1, price_open="1.09530", sl="1.09000")
    moved_sl = broker_position(1, price_open="1.09530", sl="1.08900")
    second = broker_position(2, sl="1.09000", tp="1.10000")
    near_tp = broker_position(2, sl="1.09000", tp="1.10000", price_current="1.09996")
    manual = broker_position(900, symbol="XAUUSD", volume="0.10", price_open="1950")
    stop = deal(1, reason=4, price="1.09000", profit="-53.00")
    return [
        sync_payload(broker_time=t[0], positions=[slipped], quotes=gold),
        sync_payload(broker_time=t[1], positions=[moved_sl, second], quotes=wide, equity="8400.00"),
        sync_payload(broker_time=t[2], positions=[slipped, near_tp, manual], quotes=wide, equity="7900.00"),
        sync_payload(broker_time=t[3], positions=[slipped, manual], quotes=gold),
        sync_payload(broker_time=t[4], positions=[manual], deals=[stop], quotes=gold, equity="10100.00"),
        sync_payload(broker_time=t[5], positions=None, quotes=gold, equity="10100.00"),
    ]  # fmt: skip


def _state(user):
    positions = [
        (p.ticket, p.origin, p.status, p.matched, tuple(p.divergence_reasons), p.close_reason, p.realized_pnl,
         p.price_current)
        for p in Position.objects.filter(user=user).order_by("ticket")
    ]  # fmt: skip
    logs = [
        (r.event_type, r.status, r.ticket, r.divergence_reason, r.close_reason, r.details.get("transition"))
        for r in ReconciliationLog.objects.filter(user=user).order_by("id")
    ]
    from guards.models import DrawdownAlert, MarketAlert

    alerts = [(a.level, a.max_level, a.max_value_pct, a.resolved_at) for a in DrawdownAlert.objects.filter(user=user)]
    alerts += [(a.condition, a.level, a.max_level, a.resolved_at) for a in MarketAlert.objects.filter(user=user)]
    return positions, sorted(logs, key=str), alerts


def _without_timing(summary):
    return {k: v for k, v in summary.items() if k not in ("duration_ms", "sync_id")}


def test_batch_ingestion_equals_one_sync_at_a_time(user, other_user):
    # given the same story for two users: one sync at a time, and as one backlog
    from reconciliation.serializers import SyncInputSerializer
    from reconciliation.services import sync_ingest_batch

    clock = Clock()
    story = _story(clock)
    for u in (user, other_user):
        register(u, 1, sl="1.09000")
        register(u, 2, sl="1.09000", tp="1.10000")
    # when
    one_by_one = [ingest(user, payload).summary for payload in story]
    validated = []
    for payload in story:
        serializer = SyncInputSerializer(data={**payload, "sync_id": str(uuid.uuid4())})
        serializer.is_valid(raise_exception=True)
        validated.append(serializer.validated_data)
    batched = [result.summary for result in sync_ingest_batch(user_id=other_user.pk, batch=validated)]
    # then: the same summaries, ledger, log rows and alert episodes
    assert [_without_timing(s) for s in one_by_one] == [_without_timing(s) for s in batched]
    assert _state(user) == _state(other_user)
    assert one_by_one[4]["closed"][0]["close_reason"] == "sl_hit"  # the story did close by deal
    assert one_by_one[2]["guards"]["drawdown"]["level"] == "critical"  # (10000 − 7900) / 10000 = 21 %


def test_batch_replays_and_conflicts(user):
    from reconciliation.serializers import SyncInputSerializer
    from reconciliation.services import sync_ingest_batch

    clock = Clock()
    t1, t2 = clock.tick(), clock.tick()
    first = ingest(user, sync_payload(broker_time=t1, positions=[]))

    def validated(payload):
        serializer = SyncInputSerializer(data=payload)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    new = validated(sync_payload(broker_time=t2, positions=[]))
    stored = validated({**sync_payload(broker_time=t1, positions=[]), "sync_id": first.summary["sync_id"]})
    # when a backlog holds a stored sync, a new one and the new one again
    results = sync_ingest_batch(user_id=user.pk, batch=[stored, new, new])
    # then
    assert [r.created for r in results] == [False, True, False]
    assert results[0].summary == first.summary and results[2].summary == results[1].summary
    assert len(logs(user, event_type="sync")) == 2
    # and a backlog going back in time is rejected whole
    before = table_counts()
    older = validated(sync_payload(broker_time=t1 - timedelta(seconds=1), positions=[]))
    later = validated(sync_payload(broker_time=clock.tick(), positions=[]))
    from reconciliation.services import SyncOutOfOrder

    with pytest.raises(SyncOutOfOrder):
        sync_ingest_batch(user_id=user.pk, batch=[later, older])
    assert table_counts() == before


# ---------------------------------------------------------------------------------------------
# Side effects after commit: cache generation and metrics
# ---------------------------------------------------------------------------------------------
def _sample(name, **labels):
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_sync_bumps_the_cache_generation_and_counts_metrics_after_commit(user, django_capture_on_commit_callbacks):
    from tradingsite.caching import user_generation

    # given a pending position that will fill with slippage, and a current generation
    register(user, 1)
    generation = user_generation(user.pk)
    syncs = _sample("tradingsite_syncs_total", outcome="created")
    slippages = _sample("tradingsite_divergences_total", reason="entry_slippage")
    openings = _sample("tradingsite_guard_transitions_total", kind="drawdown", transition="opened", level="warning")
    payload = sync_payload(
        broker_time=Clock().tick(), positions=[broker_position(1, price_open="1.09540")], equity="8500.00"
    )
    # when
    with django_capture_on_commit_callbacks(execute=True):
        ingest(user, payload)
    # then: one INCR of the generation, one sync, one slippage, one drawdown warning (15 %) opened
    assert user_generation(user.pk) == generation + 1
    assert _sample("tradingsite_syncs_total", outcome="created") == syncs + 1
    assert _sample("tradingsite_divergences_total", reason="entry_slippage") == slippages + 1
    assert (
        _sample("tradingsite_guard_transitions_total", kind="drawdown", transition="opened", level="warning")
        == openings + 1
    )
    # and a replay counts as replayed, bumps nothing
    replays = _sample("tradingsite_syncs_total", outcome="replayed")
    with django_capture_on_commit_callbacks(execute=True):
        ingest(user, payload)
    assert _sample("tradingsite_syncs_total", outcome="replayed") == replays + 1
    assert user_generation(user.pk) == generation + 1
