"""GET guards/instruments/ and PATCH guards/instruments/{symbol}/: effective pip, tolerances, spread thresholds."""

from decimal import Decimal as D

import pytest

from guards.models import InstrumentGuardSetting
from reconciliation.tests.factories import Clock, ingest, quote, sync_payload

pytestmark = pytest.mark.django_db
URL = "/api/v1/guards/instruments/"


def _by_symbol(body):
    return {row["symbol"]: row for row in body}


def test_list_shows_the_defaults_and_their_values_at_the_latest_quote(auth_client, user):
    ingest(user, sync_payload(broker_time=Clock().tick(), positions=[], quotes=[quote("XAUUSD", "2000.00", "2000.30")]))
    account = user.accounts.get()
    response = auth_client.get(f"{URL}?account={account.pk}")
    assert response.status_code == 200
    gold = _by_symbol(response.json())["XAUUSD"]
    assert (gold["asset_class"], gold["pip_size"], gold["pip_size_source"]) == ("metal", "0.10000000", "instrument")
    # mid 2000.15; entry floor 0.02 % → 0.02 / 100 × 2000.15 = 0.40003 = 4.0003 pips of 0.10
    assert gold["entry_tolerance"] == {
        "floor_unit": "pct", "floor": "0.0200", "spread_multiple": "1.5000", "source": "default",
        "at_price": "0.40003000", "at_price_pips": "4.0003",
    }  # fmt: skip
    # one spread known (0.30 = 3 pips): below 20 samples the class thresholds apply, 10 / 20 pips
    assert gold["spread_thresholds"] == {"unit": "pips", "warning": "10.0000", "critical": "20.0000",
                                         "source": "class_default"}  # fmt: skip
    assert (gold["median_spread"], gold["median_spread_pips"], gold["spread_samples"], gold["median_in_use"]) == (
        "0.30000000", "3.0000", 1, False
    )  # fmt: skip
    assert gold["override"] is None
    eur = _by_symbol(response.json())["EURUSD"]
    assert (eur["pip_size"], eur["entry_tolerance"]["floor_unit"], eur["entry_tolerance"]["at_price"]) == (
        "0.00010000", "pips", None  # no EURUSD quote yet
    )  # fmt: skip


def test_patch_sets_and_clears_overrides(auth_client, user):
    ingest(user, sync_payload(broker_time=Clock().tick(), positions=[]))
    account = user.accounts.get()
    url = f"{URL}xauusd/?account={account.pk}"  # the symbol is upper-cased
    body = {"pip_size": "0.01", "entry_tolerance_pips": "30", "spread_unit": "median_multiple",
            "spread_warning": "4", "spread_critical": "8"}  # fmt: skip
    response = auth_client.patch(url, body, format="json")
    assert response.status_code == 200, response.content
    row = response.json()
    assert (row["pip_size"], row["pip_size_source"], row["entry_tolerance"]["floor"]) == (
        "0.01000000",
        "override",
        "30.0000",
    )
    assert row["entry_tolerance"]["source"] == "override"
    # a median-multiple override without a known median: the class default applies until one is known
    assert row["spread_thresholds"]["source"] == "class_default"
    setting = InstrumentGuardSetting.objects.get(account=account, symbol="XAUUSD")
    assert (setting.user_id, setting.spread_unit, setting.spread_critical) == (user.pk, "median_multiple", D("8"))
    # clearing
    response = auth_client.patch(url, {"pip_size": None, "spread_unit": None}, format="json")
    assert response.status_code == 200
    setting.refresh_from_db()
    assert (setting.pip_size, setting.spread_unit, setting.spread_warning, setting.entry_tolerance_pips) == (
        None, "", None, D("30")
    )  # fmt: skip


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"spread_unit": "pips", "spread_warning": "10", "spread_critical": "5"}, "spread_critical"),  # w ≥ c
        ({"spread_unit": "pips"}, "spread_warning"),  # a unit without thresholds
        ({"spread_unit": "bps", "spread_warning": "1", "spread_critical": "2"}, "spread_unit"),
        ({"pip_size": "0"}, "pip_size"),
        ({"entry_tolerance_pct": "-1"}, "entry_tolerance_pct"),
        ({"stop_tolerance_pips": "12345"}, "stop_tolerance_pips"),  # above numeric(6, 3)
    ],
)
def test_bad_overrides_are_400_and_write_nothing(auth_client, user, body, field):
    ingest(user, sync_payload(broker_time=Clock().tick(), positions=[]))
    response = auth_client.patch(f"{URL}EURUSD/", body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not InstrumentGuardSetting.objects.exists()


def test_another_users_account_and_a_path_that_is_no_symbol_are_404(auth_client, user, other_user):
    ingest(user, sync_payload(broker_time=Clock().tick(), positions=[]))
    bob_account = other_user.accounts.get()
    assert auth_client.patch(f"{URL}BAD$NAME/", {"pip_size": "1"}, format="json").status_code == 404
    assert auth_client.patch(f"{URL}{'X' * 33}/", {"pip_size": "1"}, format="json").status_code == 404
    assert auth_client.get(f"{URL}?account={bob_account.pk}").status_code == 404
    response = auth_client.patch(f"{URL}EURUSD/?account={bob_account.pk}", {"pip_size": "1"}, format="json")
    assert response.status_code == 404
    assert not InstrumentGuardSetting.objects.exists()


def test_a_symbol_can_be_configured_before_its_first_sync(auth_client, user):
    # no instrument NEWSYM yet: the override is kept, listed with null pip and rules until its specs arrive
    ingest(user, sync_payload(broker_time=Clock().tick(), positions=[]))
    body = {"spread_unit": "pct", "spread_warning": "0.2", "spread_critical": "0.4"}
    response = auth_client.patch(f"{URL}newsym/", body, format="json")
    assert response.status_code == 200, response.content
    row = response.json()
    assert (row["symbol"], row["pip_size"], row["spread_thresholds"]) == ("NEWSYM", None, None)
    assert row["override"]["spread_warning"] == "0.200"
    listed = _by_symbol(auth_client.get(URL).json())
    assert listed["NEWSYM"]["override"]["spread_unit"] == "pct"


def test_overrides_are_capped_per_account(auth_client, user):
    # MAX_SETTINGS_PER_ACCOUNT (1000) symbols already configured: a new one is a 400, an existing one changes
    from guards.instruments import MAX_SETTINGS_PER_ACCOUNT

    ingest(user, sync_payload(broker_time=Clock().tick(), positions=[]))
    account = user.accounts.get()
    InstrumentGuardSetting.objects.bulk_create(
        InstrumentGuardSetting(user=user, account=account, symbol=f"S{i}") for i in range(MAX_SETTINGS_PER_ACCOUNT)
    )
    assert auth_client.patch(f"{URL}EURUSD/", {"pip_size": "0.0001"}, format="json").status_code == 400
    assert auth_client.patch(f"{URL}S1/", {"pip_size": "0.0001"}, format="json").status_code == 200
    assert InstrumentGuardSetting.objects.count() == MAX_SETTINGS_PER_ACCOUNT


def test_an_override_changes_the_next_syncs_spread_level(auth_client, user):
    # EURUSD 20 pips is critical by default; with a 50 / 100-pip override it is ok
    clock = Clock()
    ingest(user, sync_payload(broker_time=clock.tick(), positions=[]))
    body = {"spread_unit": "pips", "spread_warning": "50", "spread_critical": "100"}
    assert auth_client.patch(f"{URL}EURUSD/", body, format="json").status_code == 200
    summary = ingest(
        user, sync_payload(broker_time=clock.tick(), positions=[], quotes=[quote("EURUSD", "1.10000", "1.10200")])
    ).summary
    assert [a for a in summary["guards"]["market_alerts"] if a["condition"] == "wide_spread"] == []
