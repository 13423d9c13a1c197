"""guards.cashflow: cash flows, the time-weighted equity index, drawdown on it, balance continuity (pure).

Expected values are worked out by hand in each test.
"""

from decimal import Decimal as D

import pytest

from guards.cashflow import (
    IndexState,
    advance,
    balance_check,
    cash_flow,
    drawdown_pct,
    is_balance_operation,
    is_wiped_out,
)


def op(amount, type=2):
    return {"ticket": 1, "position_id": 0, "type": type, "entry": 0, "profit": D(amount)}


def trade(profit="0", commission="0", swap="0", fee="0", entry=1):
    return {
        "ticket": 2,
        "position_id": 7,
        "type": 1,
        "entry": entry,
        "profit": D(profit),
        "commission": D(commission),
        "swap": D(swap),
        "fee": D(fee),
    }


@pytest.mark.parametrize("type", [2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 15, 16, 17])
def test_balance_operation_types(type):
    assert is_balance_operation({"type": type})


@pytest.mark.parametrize("type", [0, 1, 13, 14, "buy"])
def test_trades_and_cancellations_are_not_cash_flows(type):
    assert not is_balance_operation({"type": type})


def test_cash_flow_sums_only_balance_operations():
    # +5,000 deposit − 3,000 withdrawal − 12.50 charge (type 4); the trade's 100 is not a flow: 1,987.50.
    assert cash_flow([op("5000"), op("-3000"), op("-12.50", type=4), trade(profit="100")]) == D("1987.50")


def test_withdrawal_without_position_is_no_drawdown():
    # Issue example: equity 10,000 → 7,000 by a 3,000 withdrawal. r = (7,000 − (−3,000)) / 10,000 − 1 = 0.
    state = advance(IndexState(), equity=D("10000"))
    state = advance(state, equity=D("7000"), flow=D("-3000"))
    assert state.index == D("1") and state.peak == D("1")
    assert drawdown_pct(state) == D("0.0000")


def test_deposit_does_not_raise_the_peak_and_a_loss_after_it_is_measured():
    # 10,000 → deposit 5,000 → 15,000 (r = 0, index 1). Then a trading loss to 12,000:
    # r = 12,000 / 15,000 − 1 = −0.2 → index 0.8, drawdown (1 − 0.8) / 1 × 100 = 20 %.
    state = advance(IndexState(), equity=D("10000"))
    state = advance(state, equity=D("15000"), flow=D("5000"))
    assert state.index == D("1")
    state = advance(state, equity=D("12000"))
    assert state.index == D("0.8") and drawdown_pct(state) == D("20.0000")


def test_peak_persists_and_chains_returns():
    # 10,000 → 11,000: index 1.1 (peak 1.1). Then a loss of 550 and a 1,000 withdrawal: equity
    # 11,000 − 550 − 1,000 = 9,450; r = (9,450 − (−1,000)) / 11,000 − 1 = 10,450 / 11,000 − 1 = −0.05
    # → index 1.1 × 0.95 = 1.045.
    # Drawdown = (1.1 − 1.045) / 1.1 × 100 = 5 %.
    state = advance(IndexState(), equity=D("10000"))
    state = advance(state, equity=D("11000"))
    state = advance(state, equity=D("9450"), flow=D("-1000"))
    assert state.peak == D("1.1") and state.index == D("1.045")
    assert drawdown_pct(state) == D("5.0000")


def test_index_from_emptied_account_keeps_value():
    # Equity 0 then a 1,000 deposit: no return is defined from 0; the index stays, equity restarts.
    state = IndexState(index=D("0.5"), peak=D("1"), equity=D("0"))
    state = advance(state, equity=D("1000"), flow=D("1000"))
    assert state.index == D("0.5") and state.equity == D("1000")
    assert drawdown_pct(state) == D("50.0000")


def test_refill_after_a_wipe_out_restarts_the_index_at_the_refill():
    # The found defect (an account refilled after stop-outs). Deposit 1,000 → equity 1,000: index 1.
    # Stop-out to 0.50: index 0.50 / 1,000 = 0.0005, drawdown (1 − 0.0005) × 100 = 99.95 %: wiped out (≤ 1 %).
    # Deposit 1,000 → equity 1,000.50. Old rule: r = (1,000.50 − 1,000) / 0.50 = 1 → index stays 0.0005, and
    # the drop to 900 reads 0.0005 × 900 / 1,000.50 → 99.955 % for ever (peak in money 900 / 0.00045 ≈ 2.0 M).
    # New rule: the return from 0.50 is undefined, the index restarts at the refill (index 1, peak 1, start
    # 1,000.50); the drop to 900: index 900 / 1,000.50 = 0.899550224887556… → 0.899550224888 (12 dp),
    # drawdown (1 − 0.899550224888) × 100 = 10.0449775112 → 10.0450 %.
    state = advance(IndexState(), equity=D("1000"))
    state = advance(state, equity=D("0.50"))
    assert state.index == D("0.0005") and drawdown_pct(state) == D("99.9500") and is_wiped_out(state)
    state = advance(state, equity=D("1000.50"), flow=D("1000"))
    assert (state.index, state.peak, state.equity, state.restarted) == (D("1"), D("1"), D("1000.50"), True)
    assert drawdown_pct(state) == D("0.0000")
    state = advance(state, equity=D("900"))
    assert state.index == D("0.899550224888") and not state.restarted
    assert drawdown_pct(state) == D("10.0450")


def test_repeated_stop_outs_and_refills_keep_the_peak_at_the_last_refill():
    # Three cycles of 1,000.50 → 0.50 (stop-out) → +1,000 deposit. Old rule: each stop-out multiplied the
    # index by 0.50 / 1,000.50 ≈ 0.0005 and no refill lifted it, so the peak in money (equity × peak /
    # index) reached ≈ 1,000.50 / 0.0005³ ≈ 8 × 10¹²; new rule: each refill restarts it, index 1 and peak 1.
    state = advance(IndexState(), equity=D("1000.50"))
    for _ in range(3):
        state = advance(state, equity=D("0.50"))
        assert drawdown_pct(state) == D("99.9500")  # 0.50 / 1,000.50 = 0.00049975… → 99.950025 % → 99.9500
        state = advance(state, equity=D("1000.50"), flow=D("1000"))
        assert (state.index, state.peak, state.restarted) == (D("1"), D("1"), True)


def test_a_deposit_into_a_deep_but_not_wiped_out_account_is_chained():
    # 10,000 → 200 (index 0.02, drawdown 98 % > 1 % of the peak left: not wiped out), then +1,000 deposit with
    # equity 1,200: r = (1,200 − 1,000) / 200 − 1 = 0 → index 0.02, drawdown still 98 %: a normal account's
    # numbers are unchanged by the wipe-out rule.
    state = advance(IndexState(), equity=D("10000"))
    state = advance(state, equity=D("200"))
    assert not is_wiped_out(state)
    state = advance(state, equity=D("1200"), flow=D("1000"))
    assert (state.index, state.restarted) == (D("0.02"), False) and drawdown_pct(state) == D("98.0000")


def test_a_wiped_out_account_without_a_deposit_stays_in_its_episode():
    # 1,000 → 0.50 (index 0.0005) → 0.40 after a swap charge, no deposit: index 0.0005 × 0.40 / 0.50 = 0.0004,
    # drawdown 99.96 %: without new money the episode (and its ≈ 100 % drawdown) goes on.
    state = advance(IndexState(), equity=D("1000"))
    state = advance(state, equity=D("0.50"))
    state = advance(state, equity=D("0.40"))
    assert state.index == D("0.0004") and drawdown_pct(state) == D("99.9600") and not state.restarted


def test_balance_continuity_explained():
    # Balance 10,000 → 10,185.50: closing deal profit 200, swap −4.50, commission −7, fee −3 = 185.50.
    check = balance_check(
        previous_balance=D("10000"),
        balance=D("10185.50"),
        new_deals=[trade(profit="200", swap="-4.50", commission="-7", fee="-3")],
    )
    assert check.expected == D("185.50") and check.actual == D("185.50") and check.residue == 0 and check.ok


def test_balance_continuity_with_withdrawal_and_entry_commission():
    # −3,000 withdrawal + entry commission −3.50 (charged on the balance at entry): expected −3,003.50.
    check = balance_check(
        previous_balance=D("10000"), balance=D("6996.50"), new_deals=[op("-3000"), trade(commission="-3.50", entry=0)]
    )
    assert check.expected == D("-3003.50") and check.ok


def test_unexplained_balance_change_above_one_cent():
    # Balance fell 25.02 with no deal: residue −25.02, above the 0.01 tolerance.
    check = balance_check(previous_balance=D("10000.00"), balance=D("9974.98"), new_deals=[])
    assert not check.ok
    assert check.details() == {
        "previous_balance": "10000.00",
        "balance": "9974.98",
        "expected": "0",
        "actual": "-25.02",
        "residue": "-25.02",
        "tolerance": "0.01",
        "trade_money": "0",
        "cash_flow": "0",
    }


def test_one_cent_residue_is_tolerated_two_is_not():
    assert balance_check(previous_balance=D("100.00"), balance=D("100.01"), new_deals=[]).ok
    assert not balance_check(previous_balance=D("100.00"), balance=D("100.02"), new_deals=[]).ok


def test_tolerance_follows_currency_digits():
    # JPY (0 digits): tolerance 1 yen; BTC (8 digits): 0.00000001.
    assert balance_check(previous_balance=D("1500000"), balance=D("1500001"), new_deals=[], currency_digits=0).ok
    btc = balance_check(previous_balance=D("0.12345678"), balance=D("0.12345680"), new_deals=[], currency_digits=8)
    assert btc.tolerance == D("0.00000001") and not btc.ok
