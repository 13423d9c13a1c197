"""``seed_demo``: demo users driven through the real services, deterministic, idempotent, every kind of row."""

import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from demo.management.commands.seed_demo import QUOTED, Terminal
from guards.models import DrawdownAlert, MarketAlert
from positions.models import Instrument, Position
from reconciliation.models import ReconciliationLog
from reconciliation.serializers import SyncInputSerializer

pytestmark = pytest.mark.django_db


def seed(**options) -> str:
    out = io.StringIO()
    call_command("seed_demo", stdout=out, **options)
    return out.getvalue()


def fingerprint(prefix: str) -> list[tuple]:
    """Everything about the seeded ledger except ids and wall-clock times."""
    rows = Position.objects.filter(user__username__startswith=prefix).order_by("user__username", "ticket")
    return [
        (p.user.username[len(prefix) :], p.ticket, p.symbol, p.side, p.volume, p.price_open, p.status, p.close_reason,
         p.realized_pnl, tuple(p.divergence_reasons))
        for p in rows.select_related("user")
    ]  # fmt: skip


def test_seed_demo_creates_logins_and_every_kind_of_row():
    # given eight users: the scheduled events cover users 1–8 (see Terminal)
    # when
    output = seed(users=8, syncs=60, seed=42)
    # then: logins printed, users with the shared password, admin superuser
    assert "admin / admin-demo-pass" in output and "demo001 / demo-pass-2026" in output
    users = get_user_model().objects
    assert users.get(username="admin").is_superuser
    assert users.get(username="demo008").check_password("demo-pass-2026")
    # one account per user, two for demo004 (a second login in another currency), one sync row per sync
    from accounts.models import Account

    assert Account.objects.count() == 9
    second = Account.objects.filter(user__username="demo004").order_by("login")
    assert [(a.login, a.currency) for a in second] == [(5020004, "USD"), (5030004, "EUR")]
    assert ReconciliationLog.objects.filter(event_type="sync").count() == 9 * 60
    assert all(a.reconciliation_logs.filter(event_type="sync").count() == 60 for a in Account.objects.all())
    reasons = set(ReconciliationLog.objects.filter(event_type="divergence").values_list("divergence_reason", flat=True))
    assert {"entry_slippage", "partial_fill", "sl_mismatch", "unexpected_at_broker", "missing_at_broker"} <= reasons
    closes = set(Position.objects.filter(status="closed").values_list("close_reason", flat=True))
    assert {"closed_by_bot", "closed_manually"} <= closes
    assert DrawdownAlert.objects.filter(max_level="warning").exists()
    assert DrawdownAlert.objects.filter(max_level="critical").exists()
    conditions = set(MarketAlert.objects.values_list("condition", "max_level"))
    assert {("price_gap", "warning"), ("wide_spread", "warning"), ("wide_spread", "critical"),
            ("stale_quote", "warning")} <= conditions  # fmt: skip
    # accounts in GBP, USD and EUR
    from guards.models import EquitySnapshot

    assert set(EquitySnapshot.objects.values_list("currency", flat=True)) == {"GBP", "USD", "EUR"}


def test_seed_demo_is_deterministic_and_idempotent():
    # given the same seed under two prefixes
    seed(users=3, syncs=40, seed=7, prefix="x")
    seed(users=3, syncs=40, seed=7, prefix="y")
    first = fingerprint("x")
    # then the same terminals produce the same ledger
    assert first and first == fingerprint("y")
    # and a second run skips the existing users, writes nothing, and still prints the logins
    before = ReconciliationLog.objects.count()
    output = seed(users=3, syncs=40, seed=7, prefix="x")
    assert ReconciliationLog.objects.count() == before
    assert "0 users seeded (3 already there)" in output and "x001 / demo-pass-2026" in output


def test_demo_snapshots_are_json_sync_bodies_the_endpoint_accepts():
    # given a terminal run for a while (positions, deals and quotes present)
    import random

    from django.utils import timezone

    instruments = {i.symbol: i for i in Instrument.objects.filter(symbol__in=QUOTED)}
    terminal = Terminal(rng=random.Random(3), index=4, currency="GBP", instruments=instruments, syncs=50)
    now = timezone.now().replace(microsecond=0) - timezone.timedelta(hours=1)
    snapshots = []
    for step in range(1, 51):
        now += timezone.timedelta(seconds=5)
        terminal.move_prices(step)
        terminal.close_positions(step, now)
        terminal.fill_orders(now)
        order = terminal.maybe_order(step)
        if order:
            terminal.orders.append(order)
        snapshots.append(terminal.snapshot(step, now))
    assert any(s["positions"] for s in snapshots) and any(s["deals"] for s in snapshots)
    for snapshot in snapshots:
        # when the body goes through JSON and the endpoint's serializer, then it is valid, unchanged by JSON
        assert json.loads(json.dumps(snapshot)) == snapshot
        serializer = SyncInputSerializer(data=snapshot)
        assert serializer.is_valid(), serializer.errors


def test_demo_history_seeded_on_a_weekend_ends_at_fridays_fx_close():
    from datetime import UTC, datetime

    from demo.management.commands.seed_demo import last_fx_open

    # Thursday 3 December 2026 10:00 UTC: the FX market is open, the history ends now
    thursday = datetime(2026, 12, 3, 10, 0, tzinfo=UTC)
    assert last_fx_open(thursday) == thursday
    # Saturday 5 December 12:00 UTC: closed since Friday 17:00 New York (22:00 UTC in December, EST = UTC−5),
    # so the history ends in the last 15-minute step before that close: Friday 21:45 UTC
    saturday = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)
    assert last_fx_open(saturday) == datetime(2026, 12, 4, 21, 45, tzinfo=UTC)
