"""The position lifecycle through the sync service: the examples of the accounts-and-deals issue.

Partial close, ticket change, netting increase and reversal, fees, inferred close, a position that
reappears after an empty snapshot, withdrawals and deposits, the balance continuity check. Each example
runs for a buy and its sell mirror, and on a hedging (margin_mode 2) and a netting (margin_mode 0)
account where the rule is the same. Balances move by exactly the deals' money unless a test says
otherwise, so no ``unexplained_balance_change`` appears by accident. Expected values are worked by hand.
"""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from positions.models import Deal, Position
from reconciliation.models import ReconciliationLog
from reconciliation.tests.factories import Clock, broker_position, ingest, register, sync_payload

pytestmark = pytest.mark.django_db

BUY, SELL = 0, 1
HEDGING, NETTING = 2, 0
SIDES = [("buy", BUY, SELL), ("sell", SELL, BUY)]
MODES = [HEDGING, NETTING]


def mt5_deal(ticket, position_id, *, type, entry, volume, price, order=0, reason=3, **money):
    """An MT5 ``history_deals_get()`` row; money keys: profit, swap, commission, fee."""
    row = {"ticket": ticket, "order": order, "position_id": position_id, "type": type, "entry": entry,
           "reason": reason, "symbol": "EURUSD", "volume": str(volume), "price": str(price)}  # fmt: skip
    row.update({key: str(value) for key, value in money.items()})
    return row


def balance_op(ticket, amount, type=2):
    """A balance operation (deposit +, withdrawal −): position_id 0, the amount in profit."""
    return {"ticket": ticket, "position_id": 0, "type": type, "entry": 0, "profit": str(amount), "comment": "wd"}


class Account:
    """Sends syncs of one account with the balance moved by the deals' money (equity = balance + profit)."""

    def __init__(self, user, *, margin_mode=HEDGING, balance="10000.00"):
        self.user, self.margin_mode, self.balance, self.clock = user, margin_mode, D(balance), Clock()

    def sync(self, positions, deals=(), *, balance_delta=None, **extra):
        money = sum((D(d.get(k, "0")) for d in deals for k in ("profit", "swap", "commission", "fee")), D("0"))
        self.balance += money if balance_delta is None else D(balance_delta)
        floating = sum((D(p["profit"]) for p in positions or []), D("0"))
        payload = sync_payload(
            broker_time=self.clock.tick(),
            positions=positions,
            deals=list(deals),
            balance=self.balance,
            equity=self.balance + floating,
            margin_mode=self.margin_mode,
            **extra,
        )
        return ingest(self.user, payload).summary


def events(user, *types):
    rows = ReconciliationLog.objects.filter(user=user).exclude(event_type="sync").order_by("id")
    return [(r.event_type, r.divergence_reason) for r in rows if not types or r.event_type in types]


def pos(side_code, ticket=1, identifier=None, **fields):
    row = broker_position(ticket, type=side_code, **fields)
    if identifier is not None:
        row["identifier"] = identifier
    return row


# ---------------------------------------------------------------------------------------------
# Partial close
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("side", "open_type", "close_type"), SIDES)
def test_partial_close_then_close_books_500(user, side, open_type, close_type, mode):
    # Bot opens 1.00 EURUSD; the broker closes 0.40 (profit 200) and later 0.60 (profit 300).
    register(user, 1, side=side, requested_price="1.09500")
    account = Account(user, margin_mode=mode)
    entry = mt5_deal(101, 1, order=1, type=open_type, entry=0, volume="1.00", price="1.09500")
    account.sync([pos(open_type, volume="1.00")], [entry])
    first = mt5_deal(102, 1, type=close_type, entry=1, volume="0.40", price="1.10000", profit="200")
    body = account.sync([pos(open_type, volume="0.60", profit="300")], [first])
    row = Position.objects.get(user=user)
    # A partial close is a lifecycle event, not a divergence: ledger volume 1.00 − 0.40 = 0.60, realized 200.
    assert body["divergences"] == []
    assert (row.status, row.volume, row.realized_pnl, row.matched) == ("open", D("0.60"), D("200"), True)
    assert events(user) == [("match", ""), ("partial_close", "")]
    last = mt5_deal(103, 1, type=close_type, entry=1, volume="0.60", price="1.10000", profit="300")
    body = account.sync([], [last])
    row.refresh_from_db()
    # Realized = 0 (entry) + 200 + 300 = 500.00, from the deals, not inferred.
    assert (row.status, row.realized_pnl, row.realized_pnl_inferred) == ("closed", D("500.00"), False)
    assert body["closed"][0]["realized_pnl"] == "500.00" and body["divergences"] == []
    assert events(user) == [("match", ""), ("partial_close", ""), ("close", "")]
    assert sorted(Deal.objects.filter(position=row).values_list("ticket", flat=True)) == [101, 102, 103]


# ---------------------------------------------------------------------------------------------
# Ticket change
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("side", "open_type", "close_type"), SIDES)
def test_ticket_change_with_same_identifier_is_the_same_position(user, side, open_type, close_type, mode):
    register(user, 1, side=side)
    account = Account(user, margin_mode=mode)
    account.sync([pos(open_type, ticket=1)])
    # The broker re-opens the position under ticket 7 (swap re-open); POSITION_IDENTIFIER stays 1.
    body = account.sync([pos(open_type, ticket=7, identifier=1, swap="-1.10", profit="20")])
    row = Position.objects.get(user=user)
    assert Position.objects.filter(user=user).count() == 1
    assert (row.ticket, row.identifier, row.status, row.matched) == (7, 1, "open", True)
    assert body["divergences"] == [] and body["closed"] == []
    assert events(user) == [("match", ""), ("ticket_changed", "")]
    # Its closing deal names the identifier: realized 20 − 1.10 = 18.90.
    close = mt5_deal(9, 1, type=close_type, entry=1, volume="1.00", price="1.09700", profit="20", swap="-1.10")
    account.sync([], [close])
    row.refresh_from_db()
    assert (row.status, row.realized_pnl) == ("closed", D("18.90"))


# ---------------------------------------------------------------------------------------------
# Netting accounts: increase and reversal
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("side", "open_type", "close_type"), SIDES)
def test_netting_increase_is_position_increased(user, side, open_type, close_type):
    register(user, 1, side=side, requested_price="1.09500")
    account = Account(user, margin_mode=NETTING)
    account.sync(
        [pos(open_type, price_open="1.09500")],
        [mt5_deal(101, 1, order=1, type=open_type, entry=0, volume="1.00", price="1.09500", commission="-3.50")],
    )
    # Adding 1.00 at 1.09700: averaged price_open (1.00 × 1.09500 + 1.00 × 1.09700) / 2.00 = 1.09600.
    add = mt5_deal(102, 1, order=2, type=open_type, entry=0, volume="1.00", price="1.09700", commission="-3.50")
    body = account.sync([pos(open_type, volume="2.00", price_open="1.09600")], [add])
    row = Position.objects.get(user=user)
    assert body["divergences"] == []  # no volume_mismatch, no entry_slippage from the averaged price
    assert (row.volume, row.price_open, row.matched) == (D("2.00"), D("1.09600"), True)
    assert row.realized_pnl == D("-7.00")  # two entry commissions of −3.50
    assert events(user) == [("match", ""), ("position_increased", "")]


@pytest.mark.parametrize(("side", "open_type", "close_type"), SIDES)
def test_netting_reversal_closes_one_lifecycle_and_starts_another(user, side, open_type, close_type):
    register(user, 1, side=side, requested_price="1.09500")
    account = Account(user, margin_mode=NETTING)
    account.sync(
        [pos(open_type, price_open="1.09500")],
        [mt5_deal(101, 1, order=1, type=open_type, entry=0, volume="1.00", price="1.09500", commission="-3.50")],
    )
    # INOUT of 1.50 the other way at 1.09800: closes 1.00 (profit 300 for the buy, −300 for the sell),
    # commission −5.25; opens 0.50 on the other side at 1.09800.
    profit = "300" if side == "buy" else "-300"
    reverse = mt5_deal(102, 1, order=2, type=close_type, entry=2, volume="1.50", price="1.09800", profit=profit,
                       commission="-5.25")  # fmt: skip
    other = "sell" if side == "buy" else "buy"
    body = account.sync([pos(close_type, volume="0.50", price_open="1.09800")], [reverse])
    old, new = Position.objects.filter(user=user).order_by("id")
    # Old lifecycle realized: −3.50 + (±300) − 5.25 = 291.25 (buy) or −308.75 (sell).
    expected = D("291.25") if side == "buy" else D("-308.75")
    assert (old.status, old.realized_pnl, old.close_price, old.side) == ("closed", expected, D("1.09800"), side)
    assert (new.status, new.side, new.volume, new.price_open, new.identifier) == ("open", other, D("0.50"),
                                                                                   D("1.09800"), 1)  # fmt: skip
    assert new.matched and body["divergences"] == []
    assert events(user) == [("match", ""), ("close", ""), ("reversed", "")]
    assert list(Deal.objects.filter(ticket=102).values_list("position", flat=True)) == [old.pk]


# ---------------------------------------------------------------------------------------------
# Fees and inferred closes
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("side", "open_type", "close_type"), SIDES)
def test_realized_pnl_sums_every_deal_of_the_position(user, side, open_type, close_type, mode):
    register(user, 1, side=side)
    account = Account(user, margin_mode=mode)
    account.sync(
        [pos(open_type)],
        [mt5_deal(101, 1, order=1, type=open_type, entry=0, volume="1", price="1.095", commission="-7", fee="-1.5")],
    )
    close = mt5_deal(102, 1, type=close_type, entry=1, volume="1.00", price="1.096", profit="100", swap="-2")
    account.sync([], [close])
    row = Position.objects.get(user=user)
    # 100 − 2 (exit) − 7 − 1.50 (entry commission and fee) = 89.50
    assert (row.realized_pnl, row.realized_pnl_inferred) == (D("89.50"), False)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("side", "open_type", "close_type"), SIDES)
def test_inferred_close_uses_profit_swap_commission_and_says_so(user, side, open_type, close_type, mode):
    register(user, 1, side=side)
    account = Account(user, margin_mode=mode)
    entry = mt5_deal(101, 1, order=1, type=open_type, entry=0, volume="1", price="1.095", commission="-7")
    account.sync([pos(open_type, profit="50", swap="-3", commission="-2")], [entry])
    # The position vanishes without a deal; the balance moves by what the broker booked (unknown here).
    body = account.sync([], balance_delta="45")
    row = Position.objects.get(user=user)
    # −7 (entry deal) + 50 (profit) − 3 (swap) − 2 (commission) = 38.00, flagged inferred.
    assert (row.status, row.realized_pnl, row.realized_pnl_inferred) == ("closed", D("38.00"), True)
    assert body["closed"][0]["realized_pnl_inferred"] is True
    close_row = ReconciliationLog.objects.get(user=user, event_type="close")
    assert close_row.details["source"] == "inferred" and close_row.details["realized_pnl_inferred"] is True
    # The closing deal arrives one sync later: realized is settled from the deals, −7 + 48 − 3 = 38.00 → 38.00
    # is replaced by −7 + 47.50 − 3.50 = 37.00.
    late = mt5_deal(102, 1, type=close_type, entry=1, volume="1.00", price="1.096", profit="47.50", swap="-3.50",
                    reason=4)  # fmt: skip
    account.sync([], [late], balance_delta="0")
    row.refresh_from_db()
    assert (row.realized_pnl, row.realized_pnl_inferred, row.close_reason) == (D("37.00"), False, "sl_hit")


# ---------------------------------------------------------------------------------------------
# Reappeared after an empty snapshot
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("side", "open_type", "close_type"), SIDES)
def test_position_reappearing_after_an_empty_snapshot_is_restored(user, side, open_type, close_type):
    register(user, 1, side=side)
    account = Account(user)
    account.sync([pos(open_type, profit="12.00")])
    account.sync([], balance_delta="0")  # a glitch: the worker saw no position
    row = Position.objects.get(user=user)
    assert (row.status, row.realized_pnl, row.realized_pnl_inferred) == ("closed", D("12.00"), True)
    body = account.sync([pos(open_type, profit="15.00")], balance_delta="0")
    row.refresh_from_db()
    # Restored: open, the inferred 12.00 taken back (no deal booked yet: realized 0).
    assert (row.status, row.realized_pnl, row.realized_pnl_inferred, row.closed_at) == ("open", D("0"), False, None)
    assert Position.objects.filter(user=user).count() == 1 and body["counts"]["reappeared"] == 1
    assert events(user) == [("match", ""), ("close", ""), ("reappeared_at_broker", "")]


# ---------------------------------------------------------------------------------------------
# Cash flows: withdrawal, deposit; balance continuity
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_withdrawal_is_a_cash_flow_not_a_drawdown(user, mode):
    account = Account(user, margin_mode=mode)
    account.sync([])
    # 10,000 → 7,000 by a 3,000 withdrawal: r = (7,000 − (−3,000)) / 10,000 − 1 = 0 → drawdown 0 %.
    body = account.sync([], [balance_op(900, "-3000")])
    drawdown = body["guards"]["drawdown"]
    assert (drawdown["drawdown_pct"], drawdown["level"], drawdown["should_close_all"]) == ("0.0000", "ok", False)
    assert drawdown["cash_flow"] == "-3000.00000000" or D(drawdown["cash_flow"]) == D("-3000")
    assert D(drawdown["peak_equity"]) == D("7000")  # the peak in today's money: 7,000 × 1 / 1
    assert body["divergences"] == []
    assert Deal.objects.get(ticket=900).position is None


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("side", "open_type", "close_type"), SIDES)
def test_withdrawal_with_a_position_open_measures_only_the_floating_loss(user, side, open_type, close_type, mode):
    # The buy and sell mirror of the withdrawal, with a position open: 10,000 balance, floating 0.
    register(user, 5, side=side)
    account = Account(user, margin_mode=mode)
    account.sync([pos(open_type, ticket=5, profit="0")])
    # 3,000 withdrawn while the position floats −500 (the buy's price fell, the sell's rose):
    # balance 7,000, equity 6,500; r = (6,500 − (−3,000)) / 10,000 − 1 = −0.05 → drawdown 5 %, not
    # (10,000 − 6,500) / 10,000 = 35 % as the raw equity would give.
    body = account.sync([pos(open_type, ticket=5, profit="-500")], [balance_op(900, "-3000")])
    drawdown = body["guards"]["drawdown"]
    assert (drawdown["drawdown_pct"], drawdown["level"], drawdown["should_close_all"]) == ("5.0000", "ok", False)
    # the peak in today's money: 6,500 × 1 / 0.95 = 6,842.105… → 6,842.11
    assert D(drawdown["peak_equity"]).quantize(D("0.01")) == D("6842.11")
    assert body["divergences"] == []


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("side", "open_type", "close_type"), SIDES)
def test_deposit_then_loss_measures_the_loss_only(user, side, open_type, close_type, mode):
    account = Account(user, margin_mode=mode)
    account.sync([])
    account.sync([], [balance_op(900, "5000")])  # 10,000 → 15,000: r = (15,000 − 5,000) / 10,000 − 1 = 0
    # A 1,500 floating loss on a buy or a sell (balance moved by a closing deal is not needed: equity only).
    body = account.sync([pos(open_type, ticket=5, profit="-1500")])
    # r = 13,500 / 15,000 − 1 = −0.1 → index 0.9, drawdown (1 − 0.9) / 1 × 100 = 10 %.
    assert body["guards"]["drawdown"]["drawdown_pct"] == "10.0000"
    assert D(body["guards"]["drawdown"]["peak_equity"]) == D("15000")  # 13,500 × 1 / 0.9


def test_unexplained_balance_change_is_a_divergence_with_the_amounts(user):
    account = Account(user)
    account.sync([])
    # Balance falls 25.02 with no deal: expected 0, actual −25.02, residue −25.02 (> 0.01).
    body = account.sync([], balance_delta="-25.02")
    [divergence] = body["divergences"]
    assert divergence["reason"] == "unexplained_balance_change"
    assert (D(divergence["expected"]), D(divergence["actual"]), D(divergence["residue"])) == (
        D("0"), D("-25.02"), D("-25.02")
    )  # fmt: skip
    assert events(user) == [("divergence", "unexplained_balance_change")]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("side", "open_type", "close_type"), SIDES)
def test_balance_short_of_the_closing_deal_is_an_unexplained_change(user, side, open_type, close_type, mode):
    # The buy and sell mirror of the balance continuity check: a close whose deal says +100.00 while the
    # balance rises only 90.00 (a charge the broker booked without a deal).
    register(user, 1, side=side)
    account = Account(user, margin_mode=mode)
    account.sync([pos(open_type, profit="100")])
    close = mt5_deal(102, 1, type=close_type, entry=1, volume="1.00", price="1.09600", profit="100")
    body = account.sync([], [close], balance_delta="90.00")
    # expected = 100.00 (the deal), actual = 90.00, residue = 90.00 − 100.00 = −10.00 (> 0.01)
    [divergence] = body["divergences"]
    assert divergence["reason"] == "unexplained_balance_change"
    assert (D(divergence["expected"]), D(divergence["actual"]), D(divergence["residue"])) == (
        D("100"), D("90"), D("-10")
    )  # fmt: skip
    # the position's realized P&L is still the deal's 100.00: the residue is the account's, not the trade's
    assert Position.objects.get(user=user).realized_pnl == D("100")


def test_deals_sent_twice_are_booked_once(user):
    register(user, 1)
    account = Account(user)
    entry = mt5_deal(101, 1, order=1, type=BUY, entry=0, volume="1.00", price="1.09500", commission="-7")
    account.sync([pos(BUY)], [entry])
    account.sync([pos(BUY)], [entry], balance_delta="0")  # the worker's window overlaps: same deal again
    row = Position.objects.get(user=user)
    assert row.realized_pnl == D("-7") and Deal.objects.filter(user=user).count() == 1
    assert events(user, "divergence") == []


# ---------------------------------------------------------------------------------------------
# SL/TP moved by the bot (PATCH positions/{id}/) and the deals API
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("side", "open_type", "stop", "registered", "declared"),
    [
        # a buy at 1.09500 (now 1.09800) moves its SL to break-even; a sell at 1.09500 (now 1.09200) its TP
        ("buy", BUY, "sl", "1.09000", "1.09500"),
        ("sell", SELL, "tp", "1.09000", "1.09100"),
        # the mirrors: the sell moves its SL down to break-even (1.10000 → 1.09500), the buy its TP up
        ("sell", SELL, "sl", "1.10000", "1.09500"),
        ("buy", BUY, "tp", "1.10000", "1.10500"),
    ],
)
def test_declared_stop_move_logs_an_update_not_a_divergence(
    auth_client, user, side, open_type, stop, registered, declared, mode
):
    register(user, 1, side=side, **{stop: registered})
    account = Account(user, margin_mode=mode)
    now = "1.09800" if side == "buy" else "1.09200"
    account.sync([pos(open_type, price_current=now, **{stop: registered})])
    row = Position.objects.get(user=user)
    response = auth_client.patch(f"/api/v1/positions/{row.pk}/", {stop: declared}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()[stop] == f"{declared}000"
    body = account.sync([pos(open_type, price_current=now, **{stop: declared})])
    row.refresh_from_db()
    assert body["divergences"] == [] and row.matched and row.declared_stops == {}
    assert getattr(row, stop) == D(declared)
    assert events(user) == [("match", ""), (f"{stop}_updated", "")]
    update = ReconciliationLog.objects.get(user=user, event_type=f"{stop}_updated")
    assert (update.details["declared"], update.details["previous"]) == (f"{declared}000", f"{registered}000")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("side", "open_type", "stop", "registered", "moved", "pips"), [
    ("buy", BUY, "sl", "1.09000", "1.09300", "30.00"), ("sell", SELL, "tp", "1.09000", "1.08700", "-30.00"),
    ("sell", SELL, "sl", "1.10000", "1.09700", "-30.00"), ("buy", BUY, "tp", "1.10000", "1.10300", "30.00"),
])  # fmt: skip
def test_undeclared_stop_move_stays_a_divergence(user, side, open_type, stop, registered, moved, pips, mode):
    register(user, 1, side=side, **{stop: registered})
    account = Account(user, margin_mode=mode)
    account.sync([pos(open_type, **{stop: registered})])
    body = account.sync([pos(open_type, **{stop: moved})])
    # (1.09300 − 1.09000) / 0.0001 = +30 pips > 1 pip tolerance; sell TP 1.08700 − 1.09000 = −30 pips;
    # sell SL 1.09700 − 1.10000 = −30 pips; buy TP 1.10300 − 1.10000 = +30 pips (broker − registered).
    [divergence] = body["divergences"]
    assert (divergence["reason"], divergence["delta_pips"]) == (f"{stop}_mismatch", pips)


def test_stop_declared_after_the_broker_moved_it_resolves_the_mismatch(auth_client, user):
    register(user, 1, sl="1.09000")
    account = Account(user)
    account.sync([pos(BUY, sl="1.09000", price_current="1.09800")])
    account.sync([pos(BUY, sl="1.09500", price_current="1.09800")])  # moved before the bot said so
    row = Position.objects.get(user=user)
    assert row.divergence_reasons == ["sl_mismatch"]
    assert auth_client.patch(f"/api/v1/positions/{row.pk}/", {"sl": "1.09500"}, format="json").status_code == 200
    account.sync([pos(BUY, sl="1.09500", price_current="1.09800")])
    assert events(user)[-2:] == [("sl_updated", ""), ("divergence_resolved", "sl_mismatch")]


def test_patch_refuses_a_stop_on_the_wrong_side_and_writes_nothing(auth_client, user):
    register(user, 1, sl="1.09000")
    Account(user).sync([pos(BUY, sl="1.09000", price_current="1.09800")])
    row = Position.objects.get(user=user)
    response = auth_client.patch(f"/api/v1/positions/{row.pk}/", {"sl": "1.10000"}, format="json")
    assert response.status_code == 400 and "sl" in response.json()
    row.refresh_from_db()
    assert (row.sl, row.declared_stops) == (D("1.09000"), {})


def test_deals_api_lists_the_account_deals_and_a_positions_deals(auth_client, user):
    register(user, 1)
    account = Account(user)
    entry = mt5_deal(101, 1, order=1, type=BUY, entry=0, volume="1.00", price="1.09500", commission="-7")
    account.sync([pos(BUY)], [entry, balance_op(900, "500")])
    close = mt5_deal(102, 1, type=SELL, entry=1, volume="1.00", price="1.09600", profit="100")
    account.sync([], [close])
    listed = auth_client.get("/api/v1/deals/")
    assert listed.status_code == 200
    assert sorted(d["ticket"] for d in listed.json()["results"]) == [101, 102, 900]
    only_out = auth_client.get("/api/v1/deals/?entry=1").json()["results"]
    assert [(d["ticket"], d["entry_name"], d["profit"]) for d in only_out] == [(102, "out", "100.00")]
    row = Position.objects.get(user=user)
    deals = auth_client.get(f"/api/v1/positions/{row.pk}/deals/").json()
    assert [(d["ticket"], d["position_id"], d["position"]) for d in deals] == [(101, 1, row.pk), (102, 1, row.pk)]
    # realized = −7 + 100 = 93.00
    assert D(auth_client.get(f"/api/v1/positions/{row.pk}/").json()["realized_pnl"]) == D("93")


def test_another_users_position_deals_are_a_404(auth_client, user, other_user):
    register(other_user, 1)
    Account(other_user).sync([pos(BUY)], [mt5_deal(101, 1, order=1, type=BUY, entry=0, volume="1", price="1.095")])
    theirs = Position.objects.get(user=other_user)
    assert auth_client.get(f"/api/v1/positions/{theirs.pk}/deals/").status_code == 404
    assert auth_client.patch(f"/api/v1/positions/{theirs.pk}/", {"sl": "1.09"}, format="json").status_code == 404


# ---------------------------------------------------------------------------------------------
# Deals input: ranges, shapes, positions unknown
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("field", "value"),
    [("type", 18), ("entry", 4), ("ticket", 0), ("position_id", -1), ("volume", "-0.01"), ("fee", "1e30"),
     ("comment", "x" * 65), ("magic", 2**63)],
)  # fmt: skip
def test_a_bad_deal_field_is_a_400_and_nothing_is_written(auth_client, user, field, value):
    from reconciliation.tests.factories import SYNC_URL, table_counts

    row = {**mt5_deal(101, 1, type=BUY, entry=0, volume="1.00", price="1.09500"), field: value}
    before = table_counts()
    response = auth_client.post(SYNC_URL, sync_payload(broker_time=Clock().tick(), positions=[], deals=[row]))
    assert response.status_code == 400
    assert field in response.json()["deals"]["0"]
    assert table_counts() == before and not Deal.objects.exists()


def test_trade_deal_needs_a_position_and_balance_operation_a_type(auth_client, user):
    from reconciliation.tests.factories import SYNC_URL

    no_position = {**mt5_deal(101, 0, type=BUY, entry=0, volume="1", price="1.1")}
    no_type = {"ticket": 102, "position_id": 0, "profit": "100"}
    response = auth_client.post(
        SYNC_URL, sync_payload(broker_time=Clock().tick(), positions=[], deals=[no_position, no_type])
    )
    assert response.status_code == 400
    errors = response.json()["deals"]
    assert "position_id" in errors["0"] and "type" in errors["1"]


def test_closing_deal_closes_the_position_when_positions_are_unknown(user):
    register(user, 1)
    account = Account(user)
    account.sync([pos(BUY)])
    # positions: null (the worker could not read them) but the deal history says the position closed.
    close = mt5_deal(102, 1, type=SELL, entry=1, volume="1.00", price="1.09600", profit="100", reason=5)
    body = account.sync(None, [close])
    row = Position.objects.get(user=user)
    assert (row.status, row.close_reason, row.realized_pnl) == ("closed", "tp_hit", D("100"))
    assert body["positions_known"] is False


def test_a_position_opened_and_closed_between_two_syncs_is_recorded(user):
    account = Account(user)
    account.sync([])
    deals = [
        mt5_deal(201, 50, order=50, type=SELL, entry=0, volume="0.30", price="1.09500", commission="-2.10"),
        mt5_deal(202, 50, order=51, type=BUY, entry=1, volume="0.30", price="1.09400", profit="30", reason=0),
    ]
    account.sync([], deals)
    row = Position.objects.get(user=user, identifier=50)
    # A manual sell the bot never asked for: unexpected, closed by its deal; realized 30 − 2.10 = 27.90.
    assert (row.origin, row.side, row.status, row.close_reason) == ("broker", "sell", "closed", "closed_manually")
    assert row.realized_pnl == D("27.90")


@pytest.mark.parametrize(("side", "open_type", "close_type"), SIDES)
def test_partial_close_seen_before_its_deal_is_logged_once(user, side, open_type, close_type):
    register(user, 1, side=side)
    account = Account(user)
    account.sync([pos(open_type, volume="1.00")])
    # The snapshot shows 0.60 before the deal history does: an inferred partial close (balance +200).
    account.sync([pos(open_type, volume="0.60")], balance_delta="200")
    # Next sync: the OUT 0.40 deal arrives, the volume is unchanged: money booked, no second event.
    late = mt5_deal(102, 1, type=close_type, entry=1, volume="0.40", price="1.10000", profit="200")
    account.sync([pos(open_type, volume="0.60")], [late], balance_delta="0")
    row = Position.objects.get(user=user)
    assert (row.volume, row.realized_pnl, row.status) == (D("0.60"), D("200"), "open")
    assert events(user, "match", "partial_close") == [("match", ""), ("partial_close", "")]
    # The balance check sees the lag both ways: +200 without a deal, then a 200 deal without a move.
    assert events(user, "divergence") == [("divergence", "unexplained_balance_change")] * 2
    assert ReconciliationLog.objects.get(user=user, event_type="partial_close").details["inferred"] is True


@pytest.mark.parametrize("search", ["", "101", "EURUSD"])
def test_deal_admin_lists_read_only(client, admin_user, user, search):
    register(user, 1)
    Account(user).sync([pos(BUY)], [mt5_deal(101, 1, order=1, type=BUY, entry=0, volume="1", price="1.095")])
    client.force_login(admin_user)
    response = client.get("/admin/positions/deal/", {"q": search} if search else {})
    assert response.status_code == 200
    assert (b"101" in response.content) is (search != "EURUSD")
    assert client.get("/admin/positions/deal/add/").status_code == 403


def test_partial_close_of_a_partially_filled_entry_keeps_the_fill_divergence(user):
    register(user, 1, volume="1.00")
    account = Account(user)
    account.sync([pos(BUY, volume="0.60")])  # filled 0.60 of 1.00: partial_fill −0.40
    close = mt5_deal(102, 1, type=SELL, entry=1, volume="0.20", price="1.09600", profit="20")
    body = account.sync([pos(BUY, volume="0.40")], [close])
    row = Position.objects.get(user=user)
    # The bot's 1.00 less the 0.20 closed = 0.80; the broker holds 0.40: still 0.40 short of the fill.
    assert (row.volume, row.realized_pnl) == (D("0.80"), D("20"))
    assert row.divergence_details["partial_fill"]["actual"] == "0.40"
    assert row.divergence_details["partial_fill"]["delta_lots"] == "-0.40"
    assert [d["reason"] for d in body["divergences"]] == ["partial_fill"]
    assert events(user, "partial_close", "divergence") == [("divergence", "partial_fill"), ("partial_close", "")]
