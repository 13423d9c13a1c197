"""Cash flows, the cash-flow-adjusted equity index and the balance continuity check: pure Python.

Balance operations are MT5 deals of ``ENUM_DEAL_TYPE`` 2–12 and 15–17 (BALANCE, CREDIT, CHARGE,
CORRECTION, BONUS, the COMMISSION types, INTEREST, DIVIDEND, DIVIDEND_FRANKED, TAX); they carry
``position_id`` 0 and move the balance without any trade (a deposit or withdrawal is a BALANCE deal,
its sign in ``profit``). Their amount is profit + swap + commission + fee (brokers put it in
``profit``; the other fields are 0 but counted so that no money is lost).

Time-weighted return (the method myfxbook's "gain" documents): between two syncs the period return is
``r = (equity_end − flow) / equity_start − 1``, the flows of the period counted at its end, and the
index chains ``index × (1 + r)``. Drawdown is measured on that index against its running peak, so a
deposit or withdrawal never moves it: 10,000 → 7,000 by a 3,000 withdrawal gives r = (7,000 − (−3,000))
/ 10,000 − 1 = 0 and a drawdown of 0 %.

Wipe-out and refill: a sub-period's return is only defined on positive starting capital (the growth factor
is end value / start value: https://en.wikipedia.org/wiki/Time-weighted_return; with capital at or near 0
"no return can be calculated", or it is arbitrarily large:
https://en.wikipedia.org/wiki/Modified_Dietz_method; myfxbook relates each profit to the balance it was
made on, https://help.myfxbook.com/?p=271). An account whose losses took the index to 1 % of its peak or
less (a drawdown of 99 % or more: ``WIPE_OUT_FRACTION``) has negligible capital left; a deposit into it
(a refill after stop-outs) would be chained as a return of (equity − deposit) / a few cents, and the next
loss of the new money would read as a loss of the old episode's last cents: the index never recovers and
the peak in money (equity × peak / index) grows without bound. So a deposit into a wiped-out account
closes the episode (its drawdown stays on record as it was, ≈ 100 %) and the index restarts at the
refill: index 1, peak 1, the refilled equity as the start, so the drawdown is measured from the refill.
An account emptied by a withdrawal (index intact, equity 0) is not wiped out: its index is kept.

Balance continuity: between two syncs, Δbalance must equal Σ (profit + swap + commission + fee) of the
new closing deals plus Σ balance operations; a residue above one unit of the account's smallest currency
unit (10^−currency_digits, one cent for USD) is unexplained.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from positions.lifecycle import deal_money

# ENUM_DEAL_TYPE: 2 BALANCE … 12 INTEREST, 15 DIVIDEND, 16 DIVIDEND_FRANKED, 17 TAX.
BALANCE_OPERATION_TYPES = frozenset({*range(2, 13), 15, 16, 17})

INDEX_QUANTUM = Decimal("1E-12")  # the index is stored with 12 decimal places
PCT_QUANTUM = Decimal("0.0001")  # guards.models.PCT: 4 decimal places
ONE = Decimal("1")
ZERO = Decimal("0")
HUNDRED = Decimal("100")
# A drawdown of 99 % or more by losses (index ≤ 1 % of its peak): the capital left is negligible and a
# deposit restarts the index (module docstring). A judgement, not a published figure: a stop-out at the
# usual 50 % margin level leaves far more than 1 % unless a gap runs through it, so only an account
# whose losses consumed practically all of it restarts.
WIPE_OUT_FRACTION = Decimal("0.01")


def is_balance_operation(deal: Mapping[str, Any]) -> bool:
    """True for a cash movement on the balance (deal type 2–12 or 15–17), not a trade."""
    return deal.get("type") in BALANCE_OPERATION_TYPES


def cash_flow(deals: Iterable[Mapping[str, Any]]) -> Decimal:
    """Σ amount of the balance operations among ``deals`` (account currency; deposits +, withdrawals −)."""
    return sum((deal_money(d) for d in deals if is_balance_operation(d)), ZERO)


def closed_trade_money(deals: Iterable[Mapping[str, Any]]) -> Decimal:
    """Σ profit + swap + commission + fee of the trade deals that move the balance.

    Every trade deal's money is booked on the balance when the deal happens (the entry commission and
    fee too), so all buy/sell deals count, whatever their entry; ``closing`` deals (OUT, OUT_BY, INOUT)
    carry the profit.
    """
    return sum((deal_money(d) for d in deals if not is_balance_operation(d)), ZERO)


@dataclass(frozen=True)
class IndexState:
    """The cash-flow-adjusted equity index of one account: ``index`` (starts at 1), its running
    ``peak`` (never below the index) and the ``equity`` at the last observation (account currency;
    None before the first). ``restarted``: this observation closed a wiped-out episode and restarted
    the index at the refill (:func:`advance`)."""

    index: Decimal = ONE
    peak: Decimal = ONE
    equity: Decimal | None = None
    restarted: bool = False


def is_wiped_out(state: IndexState) -> bool:
    """True when losses took the index to ``WIPE_OUT_FRACTION`` (1 %) of its peak or less (drawdown ≥ 99 %)."""
    return state.equity is not None and state.index <= state.peak * WIPE_OUT_FRACTION


def advance(state: IndexState, *, equity: Decimal, flow: Decimal = ZERO) -> IndexState:
    """Chain one period ending at ``equity`` with the period's cash ``flow`` counted at its end.

    r = (equity − flow) / equity_start − 1; index ×= 1 + r (rounded half-up to 12 decimals); peak =
    max(peak, index). The first observation only records the equity. A deposit (``flow`` > 0) into a
    wiped-out account (:func:`is_wiped_out`) restarts the index at the refill: index 1, peak 1, start =
    ``equity``, ``restarted`` True (module docstring). Otherwise, when equity_start ≤ 0 (an account
    emptied to zero by a withdrawal) no return is defined: the index is kept and the new equity becomes
    the start.
    """
    if flow > 0 and is_wiped_out(state):
        return IndexState(equity=equity, restarted=True)
    start = state.equity
    if start is None or start <= 0:
        return IndexState(index=state.index, peak=max(state.peak, state.index), equity=equity)
    growth = (equity - flow) / start
    index = (state.index * growth).quantize(INDEX_QUANTUM, rounding=ROUND_HALF_UP)
    if index < 0:
        index = ZERO  # a loss beyond the whole equity (negative balance) is a 100 % drawdown, not less
    return IndexState(index=index, peak=max(state.peak, index), equity=equity)


def drawdown_pct(state: IndexState) -> Decimal:
    """(peak − index) / peak × 100 on the adjusted index, rounded half-up to 4 decimals; 0 when peak ≤ 0."""
    if state.peak <= 0:
        return ZERO.quantize(PCT_QUANTUM)
    return ((state.peak - state.index) / state.peak * HUNDRED).quantize(PCT_QUANTUM, rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class BalanceCheck:
    """Result of the balance continuity check (account currency): ``expected`` Δbalance from the deals,
    ``actual`` Δbalance reported, ``residue`` = actual − expected, ``tolerance`` = one smallest unit, and
    ``ok`` = |residue| ≤ tolerance."""

    previous_balance: Decimal
    balance: Decimal
    expected: Decimal
    actual: Decimal
    residue: Decimal
    tolerance: Decimal
    trade_money: Decimal
    cash_flow: Decimal

    @property
    def ok(self) -> bool:
        """True when the residue is within one unit of the account's smallest currency unit."""
        return abs(self.residue) <= self.tolerance

    def details(self) -> dict[str, str]:
        """JSON-ready amounts for a log row (strings, account currency)."""
        return {
            "previous_balance": str(self.previous_balance),
            "balance": str(self.balance),
            "expected": str(self.expected),
            "actual": str(self.actual),
            "residue": str(self.residue),
            "tolerance": str(self.tolerance),
            "trade_money": str(self.trade_money),
            "cash_flow": str(self.cash_flow),
        }


def balance_check(
    *, previous_balance: Decimal, balance: Decimal, new_deals: Iterable[Mapping[str, Any]], currency_digits: int = 2
) -> BalanceCheck:
    """Compare Δbalance with the money of the deals new since the previous sync.

    expected = Σ (profit + swap + commission + fee) of the new trade deals + Σ balance operations;
    actual = balance − previous_balance; tolerance = 10^−currency_digits (0.01 for USD, 1 for JPY).
    """
    deals = list(new_deals)
    trade = closed_trade_money(deals)
    flow = cash_flow(deals)
    expected = trade + flow
    actual = balance - previous_balance
    return BalanceCheck(
        previous_balance=previous_balance,
        balance=balance,
        expected=expected,
        actual=actual,
        residue=actual - expected,
        tolerance=Decimal(1).scaleb(-currency_digits),
        trade_money=trade,
        cash_flow=flow,
    )
