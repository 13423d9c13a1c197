"""The drawdown index of an account refilled after a wipe-out (a found defect): through the sync and guards/status.

Before the fix, a deposit into an account stopped out to a few cents was chained as a return on those
cents, so the index never recovered: drawdown ≈ 100 % and a peak in money of millions for ever after.
"""

from decimal import Decimal as D

import pytest
from django.urls import reverse

from guards.models import DrawdownAlert, GuardState
from reconciliation.models import ReconciliationLog
from reconciliation.tests.factories import Clock, ingest, sync_payload

pytestmark = pytest.mark.django_db


def deposit(ticket, amount):
    """A DEAL_TYPE_BALANCE deal (type 2, position 0), the amount in profit."""
    return {"ticket": ticket, "position_id": 0, "type": 2, "entry": 0, "profit": str(amount), "comment": "refill"}


def sync(user, clock, *, balance, equity, deals=()):
    payload = sync_payload(broker_time=clock.tick(), positions=None, deals=list(deals), balance=balance, equity=equity)
    return ingest(user, payload).summary["guards"]["drawdown"]


def test_refill_after_a_stop_out_measures_the_drawdown_from_the_refill(user, auth_client):
    clock = Clock()
    # Deposit 1,000 (the first sync sees equity 1,000): index 1, peak 1,000.00.
    first = sync(user, clock, balance="1000.00", equity="1000.00")
    assert (first["peak_equity"], first["drawdown_pct"], first["level"]) == ("1000.00", "0.0000", "ok")
    # Stop-out to 0.50: index 0.50 / 1,000 = 0.0005, drawdown 99.95 % ≥ 20 % → critical.
    wiped = sync(user, clock, balance="0.50", equity="0.50")
    assert (wiped["drawdown_pct"], wiped["level"], wiped["peak_equity"]) == ("99.9500", "critical", "1000.00")
    # Deposit 1,000 → equity 1,000.50. Before the fix: r = (1,000.50 − 1,000) / 0.50 = 1, index still 0.0005,
    # drawdown 99.95 % critical and peak 1,000.50 / 0.0005 = 2,001,000.00. Now the index restarts at the refill.
    refill_time = clock.now + clock.step
    refilled = sync(user, clock, balance="1000.50", equity="1000.50", deals=[deposit(900001, "1000.00")])
    assert (refilled["peak_equity"], refilled["drawdown_pct"], refilled["level"]) == ("1000.50", "0.0000", "ok")
    assert refilled["equity_index"] == "1"
    # Drop to 900: index 900 / 1,000.50 = 0.899550224888 (12 dp), drawdown 10.0449775… → 10.0450 % < 15 % → ok;
    # peak in money = 900 × 1 / 0.899550224888 = 1,000.4999… → 1,000.50. (Before the fix: 99.9550 %, critical.)
    dropped = sync(user, clock, balance="900.00", equity="900.00")
    assert (dropped["peak_equity"], dropped["drawdown_pct"], dropped["level"]) == ("1000.50", "10.0450", "ok")

    state = GuardState.objects.get(account__user=user)
    assert (state.equity_index, state.equity_index_peak, state.peak_equity_at) == (
        D("0.899550224888"), D("1"), refill_time
    )  # fmt: skip
    # The wiped-out episode stays on record as it was (99.95 %), resolved at the refill.
    (episode,) = DrawdownAlert.objects.filter(account__user=user)
    assert (episode.max_level, episode.max_value_pct, episode.resolved_at) == ("critical", D("99.9500"), refill_time)
    (event,) = [
        log
        for log in ReconciliationLog.objects.filter(user=user, event_type="guard")
        if log.details.get("kind") == "index_restart"
    ]
    assert (event.details["previous_index"], event.details["previous_drawdown_pct"]) == ("0.000500000000", "99.9500")
    assert (event.details["cash_flow"], event.details["peak_equity"]) == ("1000.00", "1000.50")

    # What the trader sees on guards/status after the refill and the drop: 10.0450 % (shown to 2 dp: 10.05) from
    # the refill's 1,000.50, level ok since the refill (when the wiped-out episode resolved).
    drawdown = auth_client.get(reverse("guards:status")).json()["drawdown"]
    assert (drawdown["equity"], drawdown["peak_equity"], drawdown["drawdown_pct"], drawdown["level"]) == (
        "900.00", "1000.50", "10.05", "ok"
    )  # fmt: skip
    assert drawdown["since"] == refill_time.isoformat().replace("+00:00", "Z")
