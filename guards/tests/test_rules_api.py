"""guards/rules/ (issue 12): an account's loss rules, firm presets, validation and scoping."""

from decimal import Decimal as D

import pytest
from django.urls import reverse

from accounts.tests.factories import default_account
from guards.models import GuardConfig, LossRule

pytestmark = pytest.mark.django_db

RULES_URL = reverse("guards:rule-list")
PRESETS_URL = reverse("guards:rule-presets")

DAILY = {"name": "My daily", "kind": "daily_loss", "anchor": "day_start", "basis": "balance", "percent": "5",
         "percent_of": "initial_capital", "reset_time": "00:00", "timezone": "Europe/Prague"}  # fmt: skip


def test_routes():
    assert (RULES_URL, PRESETS_URL) == ("/api/v1/guards/rules/", "/api/v1/guards/rules/presets/")


def test_create_list_update_delete_a_rule(auth_client, user):
    account = default_account(user)
    created = auth_client.post(RULES_URL, DAILY, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["kind"], body["percent"], body["timezone"], body["level"]) == (
        "daily_loss",
        "5.000",
        "Europe/Prague",
        "ok",
    )
    rule = LossRule.objects.get(pk=body["id"])
    assert (rule.user_id, rule.account_id) == (user.id, account.id)
    assert [r["id"] for r in auth_client.get(RULES_URL).json()] == [rule.id]
    patched = auth_client.patch(reverse("guards:rule-detail", args=[rule.id]), {"percent": "4"}, format="json")
    assert patched.status_code == 200 and patched.json()["percent"] == "4.000"
    assert auth_client.delete(reverse("guards:rule-detail", args=[rule.id])).status_code == 204
    assert not LossRule.objects.exists()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"amount": "1000"}, "amount"),  # both amount and percent
        ({"percent": "150"}, "percent"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"kind": "weekly"}, "kind"),
        ({"anchor": "yesterday"}, "anchor"),
    ],
)
def test_a_bad_rule_is_a_400_with_field_errors_and_nothing_written(auth_client, user, change, field):
    default_account(user)
    response = auth_client.post(RULES_URL, {**DAILY, **change}, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not LossRule.objects.exists()


def test_apply_the_ftmo_preset_with_the_initial_capital(auth_client, user):
    account = default_account(user)
    response = auth_client.post(PRESETS_URL, {"preset": "ftmo_2step", "initial_capital": "100000"}, format="json")
    assert response.status_code == 201, response.json()
    names = [r["name"] for r in response.json()]
    assert names == ["FTMO maximum daily loss", "FTMO maximum loss"]
    assert GuardConfig.objects.get(account=account).initial_capital == D("100000")
    daily = LossRule.objects.get(account=account, kind="daily_loss")
    assert (daily.percent, daily.timezone, daily.preset) == (D("5"), "Europe/Prague", "ftmo_2step")
    assert daily.source.startswith("https://academy.ftmo.com/")
    # applying another preset replaces the preset rules, keeps a hand-written one
    auth_client.post(RULES_URL, DAILY, format="json")
    auth_client.post(PRESETS_URL, {"preset": "the5ers_high_stakes"}, format="json")
    assert sorted(LossRule.objects.values_list("name", flat=True)) == [
        "My daily", "The5ers daily loss", "The5ers maximum loss"
    ]  # fmt: skip


def test_a_preset_needs_an_initial_capital_and_a_known_name(auth_client, user):
    default_account(user)
    missing = auth_client.post(PRESETS_URL, {"preset": "ftmo_2step"}, format="json")
    assert missing.status_code == 400 and "initial_capital" in missing.json()
    unknown = auth_client.post(PRESETS_URL, {"preset": "acme", "initial_capital": "1000"}, format="json")
    assert unknown.status_code == 400 and "preset" in unknown.json()
    negative = auth_client.post(PRESETS_URL, {"preset": "ftmo_2step", "initial_capital": "-5"}, format="json")
    assert negative.status_code == 400 and "initial_capital" in negative.json()
    assert not LossRule.objects.exists()


def test_presets_are_listed_with_their_sources(auth_client, user):
    default_account(user)
    presets = {p["preset"]: p for p in auth_client.get(PRESETS_URL).json()}
    assert set(presets) == {"ftmo_2step", "the5ers_high_stakes", "breakout_1step_classic"}
    (daily, maximum) = presets["the5ers_high_stakes"]["rules"]
    assert (daily["basis"], daily["reset_time"], daily["timezone"]) == (
        "max_balance_equity",
        "17:00:00",
        "America/New_York",
    )
    assert all(rule["source"].startswith("https://") for p in presets.values() for rule in p["rules"])


def test_another_users_rule_is_a_404_and_not_listed(auth_client, other_client, user, other_user):
    default_account(user)
    default_account(other_user)
    rule_id = auth_client.post(RULES_URL, DAILY, format="json").json()["id"]
    assert other_client.get(reverse("guards:rule-detail", args=[rule_id])).status_code == 404
    assert (
        other_client.patch(reverse("guards:rule-detail", args=[rule_id]), {"percent": "1"}, format="json").status_code
        == 404
    )
    assert other_client.delete(reverse("guards:rule-detail", args=[rule_id])).status_code == 404
    assert other_client.get(RULES_URL).json() == []
    assert LossRule.objects.get(pk=rule_id).percent == D("5")


def test_rules_need_an_account(api_client, django_user_model):
    # a user whose worker has not synced yet has no account
    newcomer = django_user_model.objects.create_user(username="newcomer", password="x")
    api_client.force_authenticate(newcomer)
    response = api_client.post(RULES_URL, DAILY, format="json")
    assert response.status_code == 400 and "account" in response.json()
