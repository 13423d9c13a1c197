"""scripts/demo_feed.py against a live server: statuses stay fresh, P&L moves, demo001 shows a divergence
and an alert (the feed talks to the service over HTTP only, as a sync worker does)."""

from __future__ import annotations

import importlib.util
from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from guards.models import MarketAlert
from positions.models import Position
from reconciliation.models import ReconciliationLog

pytestmark = [pytest.mark.live, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def load_feed():
    spec = importlib.util.spec_from_file_location("demo_feed", Path(settings.BASE_DIR) / "scripts" / "demo_feed.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_feed_keeps_accounts_fresh_and_demo001_shows_a_divergence_and_an_alert(live_server, capsys):
    call_command("seed_demo", "--users", "2", "--syncs", "12", stdout=StringIO())
    syncs_before = ReconciliationLog.objects.filter(event_type="sync").count()
    load_feed().main(["--base-url", live_server.url, "--users", "2", "--interval", "0.5", "--seconds", "2"])
    printed = capsys.readouterr().out
    assert "demo001 (MT5 login 5020001)" in printed
    # every account got new syncs (2 s at 0.5 s: about 4 each)
    assert ReconciliationLog.objects.filter(event_type="sync").count() >= syncs_before + 2 * 3
    demo001 = Position.objects.get(ticket=990001)
    assert demo001.divergence_reasons == ["unexpected_at_broker"] and demo001.status == "open"
    alert = MarketAlert.objects.get(user=demo001.user, resolved_at__isnull=True)
    assert (alert.condition, alert.symbol, alert.level) == ("wide_spread", "XAUUSD", "warning")
