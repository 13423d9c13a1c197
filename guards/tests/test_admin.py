"""Guards admin: thresholds editable and validated like the API, peak reset through the service, history read-only."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from accounts.tests.factories import default_account
from guards.models import DrawdownAlert, EquitySnapshot, GuardConfig, GuardState, MarketAlert
from guards.tests.read_factories import EquitySnapshotFactory
from reconciliation.models import ReconciliationLog

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


@pytest.fixture
def operator_client(client, admin_user):
    client.force_login(admin_user)
    return client


def _config_form(**overrides) -> dict:
    form = {
        "drawdown_warning_pct": "15",
        "drawdown_critical_pct": "20",
        "min_equity": "100",
        "gap_warning_pct": "5",
        "gap_critical_pct": "10",
        "spread_warning_pct": "0.5",
        "spread_critical_pct": "1.0",
        "quote_stale_seconds": "60",
        "sync_stale_seconds": "60",
        "drawdown_hysteresis_pct": "1",
        "margin_warning_buffer_pct": "10",
        "margin_critical_distance_pct": "20",
        "margin_hysteresis_pct": "5",
        "initial_capital": "",
    }
    return {**form, **overrides}


def _snapshot(user, *, equity: str, peak: str) -> EquitySnapshot:
    return EquitySnapshotFactory.create(
        user=user,
        sync_id=uuid.uuid4(),
        broker_time=NOW,
        currency="USD",
        balance=Decimal("10000"),
        equity=Decimal(equity),
        peak_equity=Decimal(peak),
        drawdown_pct=Decimal("15"),
    )


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"drawdown_warning_pct": "0.15", "drawdown_critical_pct": "0.20"}, "drawdown_warning_pct"),  # a fraction
        ({"drawdown_warning_pct": "25"}, "drawdown_warning_pct"),  # warning 25 >= critical 20
        ({"gap_critical_pct": "150"}, "gap_critical_pct"),  # above 100 %
        ({"spread_warning_pct": "0"}, "spread_warning_pct"),  # not > 0
    ],
)
def test_guard_config_admin_rejects_invalid_thresholds(operator_client, user, overrides, field):
    # given the user's config with defaults
    config = GuardConfig.objects.create(user=user, account=default_account(user))

    # when an operator saves an invalid threshold
    response = operator_client.post(
        reverse("admin:guards_guardconfig_change", args=[config.pk]), _config_form(**overrides)
    )

    # then the form shows the field error and nothing is written
    assert response.status_code == 200
    assert field in response.context["adminform"].form.errors
    config.refresh_from_db()
    assert (config.drawdown_warning_pct, config.gap_critical_pct) == (Decimal("15"), Decimal("10"))


def test_guard_config_admin_saves_valid_thresholds(operator_client, user):
    # given the user's config with defaults
    config = GuardConfig.objects.create(user=user, account=default_account(user))

    # when an operator sets drawdown 10 / 12.5
    response = operator_client.post(
        reverse("admin:guards_guardconfig_change", args=[config.pk]),
        _config_form(drawdown_warning_pct="10", drawdown_critical_pct="12.5"),
    )

    # then it is saved
    assert response.status_code == 302
    config.refresh_from_db()
    assert (config.drawdown_warning_pct, config.drawdown_critical_pct) == (Decimal("10"), Decimal("12.5"))


def test_guard_config_admin_adds_a_config_for_an_account(operator_client, user):
    # when an operator creates a config for alice's account
    account = default_account(user)
    response = operator_client.post(
        reverse("admin:guards_guardconfig_add"), {"account": account.pk, **_config_form(min_equity="250")}
    )

    # then it exists with the given values, owned by the account's user
    assert response.status_code == 302
    assert GuardConfig.objects.get(account=account, user=user).min_equity == Decimal("250")


def test_reset_peak_action_goes_through_the_service_and_writes_a_guard_log_row(operator_client, user, other_user):
    # given alice at 8,500 equity below a 10,000 peak (15 % drawdown); bob has never synced
    _snapshot(user, equity="8500", peak="10000")
    state = GuardState.objects.create(
        user=user, account=default_account(user), peak_equity=Decimal("10000"), peak_equity_at=NOW
    )
    GuardState.objects.create(
        user=other_user, account=default_account(other_user), peak_equity=Decimal("500"), peak_equity_at=NOW
    )
    states = GuardState.objects.order_by("user_id").values_list("pk", flat=True)

    # when the operator runs "reset peak equity" on both, then a confirmation page names them and changes nothing
    selection = {"action": "reset_peak_equity", "_selected_action": list(states)}
    confirm = operator_client.post(reverse("admin:guards_guardstate_changelist"), selection)
    assert confirm.status_code == 200
    assert confirm.templates[0].name == "admin/guards/reset_peak_equity_confirmation.html"
    page = confirm.content.decode()
    assert "Reset peak equity?" in page and "alice" in page and "bob" in page and "10000" in page
    assert GuardState.objects.get(pk=state.pk).peak_reset_at is None
    # when they confirm ("Yes, reset")
    response = operator_client.post(
        reverse("admin:guards_guardstate_changelist"), {**selection, "post": "yes"}, follow=True
    )

    # then alice's peak is her current equity (8,500 → 0 % drawdown), a guard row names the operator,
    # and bob's refusal (no snapshot yet) is reported instead of raised
    state.refresh_from_db()
    assert state.peak_equity == Decimal("8500")
    assert state.peak_reset_at is not None
    (row,) = ReconciliationLog.objects.filter(user=user, event_type="guard")
    assert "admin:operator" in row.message
    assert not ReconciliationLog.objects.filter(user=other_user).exists()
    texts = [str(m) for m in response.context["messages"]]
    assert "Peak equity reset for 1 account(s)." in texts
    other_account = default_account(other_user).pk
    assert any(text.startswith(f"Peak equity not reset for account {other_account}") for text in texts)


def test_reset_peak_action_is_also_offered_on_guard_configs(operator_client, user):
    # given a config and a drawdown
    _snapshot(user, equity="9000", peak="10000")
    GuardState.objects.create(
        user=user, account=default_account(user), peak_equity=Decimal("10000"), peak_equity_at=NOW
    )
    config = GuardConfig.objects.create(user=user, account=default_account(user))

    # when the action runs from the guard config list
    operator_client.post(
        reverse("admin:guards_guardconfig_changelist"),
        {"action": "reset_peak_equity", "_selected_action": [config.pk], "post": "yes"},
    )

    # then the peak is reset and logged
    assert GuardState.objects.get(user=user).peak_equity == Decimal("9000")
    assert ReconciliationLog.objects.filter(user=user, event_type="guard").count() == 1


def test_reset_peak_action_needs_the_change_guardstate_permission(client, django_user_model):
    # given a staff user who may only view guard states
    staff = django_user_model.objects.create_user(username="viewer", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_guardstate"))
    client.force_login(staff)

    # when the list renders
    response = client.get(reverse("admin:guards_guardstate_changelist"))

    # then the list renders without any action (reset needs guards.change_guardstate)
    assert response.status_code == 200
    assert response.context["action_form"] is None
    assert b"reset_peak_equity" not in response.content


@pytest.mark.parametrize("model_name", ["equitysnapshot", "drawdownalert", "marketalert", "guardstate"])
def test_history_admins_are_read_only(operator_client, model_name):
    # when a superuser opens the add page of a history table
    response = operator_client.get(reverse(f"admin:guards_{model_name}_add"))

    # then it is forbidden
    assert response.status_code == 403


def test_alert_admins_list_and_filter_open_episodes(operator_client, user):
    # given an open and a resolved market alert, and an open drawdown alert
    common = {
        "user": user,
        "account": default_account(user),
        "value_pct": Decimal("5.1"),
        "max_value_pct": Decimal("5.1"),
        "threshold_pct": 5,
    }
    common |= {"opened_at": NOW, "sync_id": uuid.uuid4()}
    open_alert = MarketAlert.objects.create(
        symbol="XAUUSD", condition="price_gap", level="warning", max_level="warning", **common
    )
    MarketAlert.objects.create(
        symbol="EURUSD", condition="wide_spread", level="warning", max_level="warning", resolved_at=NOW, **common
    )
    DrawdownAlert.objects.create(
        level="warning", max_level="warning", equity=Decimal("8500"), peak_equity=Decimal("10000"), **common
    )

    # when filtering open market alerts, and listing drawdown alerts
    market = operator_client.get(reverse("admin:guards_marketalert_changelist") + "?state=open")
    drawdown = operator_client.get(reverse("admin:guards_drawdownalert_changelist"))

    # then only the open one is listed, and the drawdown list renders
    assert [row.pk for row in market.context["cl"].result_list] == [open_alert.pk]
    assert drawdown.status_code == 200
    assert len(drawdown.context["cl"].result_list) == 1


def test_a_confirmed_peak_reset_shows_on_guards_status_at_once(
    operator_client, user, auth_client, django_capture_on_commit_callbacks
):
    from reconciliation.tests.factories import SYNC_URL, Clock, sync_payload

    # given alice synced at 10,000 then 7,500 equity: (10,000 − 7,500) / 10,000 = 25 % ≥ the 20 % default → critical
    clock = Clock()
    for equity in ("10000.00", "7500.00"):
        with django_capture_on_commit_callbacks(execute=True):
            body = sync_payload(broker_time=clock.tick(), balance=equity, equity=equity)
            assert auth_client.post(SYNC_URL, body, format="json").status_code == 201
    # (read with another Accept: a page cached here would be another page key, so the read below is not a
    # page-cache hit; pages live API_CACHE_TTL_S = 5 s after any write, the freshness bound of every hot read)
    before = auth_client.get("/api/v1/guards/status/", HTTP_ACCEPT="application/json; version=1").json()
    assert before["drawdown"]["level"] == "critical" and before["any_positions_should_close"] is True
    # when the operator resets her peak from the admin and confirms, with no sync afterwards
    state = GuardState.objects.get(user=user)
    with django_capture_on_commit_callbacks(execute=True):
        operator_client.post(
            reverse("admin:guards_guardstate_changelist"),
            {"action": "reset_peak_equity", "_selected_action": [state.pk], "post": "yes"},
        )
    # then guards/status shows it at once (no sync needed): peak 7,500 = equity → 0 % drawdown, level ok,
    # no close signal
    after = auth_client.get("/api/v1/guards/status/").json()
    assert after["drawdown"]["peak_equity"] == "7500.00"
    assert after["drawdown"]["drawdown_pct"] == "0.00"
    assert after["drawdown"]["level"] == "ok"
    assert after["drawdown"]["should_close_all"] is False
    assert after["any_positions_should_close"] is False
    # and the drawdown episode the reset closed no longer reads as a current critical one in the admin
    alert_list = operator_client.get(reverse("admin:guards_drawdownalert_changelist")).content.decode()
    assert '<td class="field-level_now">resolved (was critical)</td>' in alert_list
