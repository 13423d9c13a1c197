"""Admin of loss rules and instrument guard settings: pages render, the form validates, presets apply."""

from decimal import Decimal as D

import pytest
from django.urls import reverse

from accounts.tests.factories import default_account
from guards.models import GuardConfig, InstrumentGuardSetting, LossRule

pytestmark = pytest.mark.django_db


@pytest.fixture
def operator(client, admin_user):
    client.force_login(admin_user)
    return client


def test_rule_pages_render_and_a_bad_rule_is_refused(operator, user):
    account = default_account(user)
    assert operator.get(reverse("admin:guards_lossrule_changelist")).status_code == 200
    assert operator.get(reverse("admin:guards_instrumentguardsetting_changelist")).status_code == 200
    form = {"user": user.id, "account": account.id, "name": "x", "kind": "daily_loss", "anchor": "day_start",
            "basis": "balance", "percent": "5", "amount": "100", "percent_of": "initial_capital",
            "reset_time": "00:00", "timezone": "Nowhere/City", "warning_remaining_pct": "20",
            "enabled": "on"}  # fmt: skip
    response = operator.post(reverse("admin:guards_lossrule_add"), form)
    assert response.status_code == 200  # the form again, with errors
    assert set(response.context["adminform"].form.errors) >= {"amount", "timezone"}
    assert not LossRule.objects.exists()


def test_apply_preset_action(operator, user):
    account = default_account(user)
    GuardConfig.objects.create(user=user, account=account, initial_capital=D("100000"))
    rule = LossRule.objects.create(user=user, account=account, name="mine", kind="max_loss",
                                   anchor="initial_capital", amount=D("5000"))  # fmt: skip
    response = operator.post(
        reverse("admin:guards_lossrule_changelist"),
        {"action": "apply_breakout_1step_classic", "_selected_action": [rule.id]},
        follow=True,
    )
    assert response.status_code == 200
    assert sorted(LossRule.objects.values_list("name", flat=True)) == [
        "Breakout maximum daily loss", "Breakout maximum drawdown", "mine"
    ]  # fmt: skip


def test_instrument_setting_spread_thresholds_must_be_ordered(operator, user):
    account = default_account(user)
    form = {"user": user.id, "account": account.id, "symbol": "EURUSD", "spread_unit": "pips",
            "spread_warning": "10", "spread_critical": "5"}  # fmt: skip
    response = operator.post(reverse("admin:guards_instrumentguardsetting_add"), form)
    assert "spread_critical" in response.context["adminform"].form.errors
    assert not InstrumentGuardSetting.objects.exists()


def test_spread_windows_are_browsable_and_read_only(operator, user):
    from guards.models import SymbolSpread

    account = default_account(user)
    row = SymbolSpread.objects.create(user=user, account=account, symbol="EURUSD", point=D("0.00001"),
                                      spreads=[10, 12], samples=2, median=D("0.00011"))  # fmt: skip
    changelist = operator.get(reverse("admin:guards_symbolspread_changelist"))
    assert changelist.status_code == 200 and b"EURUSD" in changelist.content
    assert operator.get(reverse("admin:guards_symbolspread_change", args=[row.pk])).status_code == 200
    assert operator.get(reverse("admin:guards_symbolspread_add")).status_code == 403
