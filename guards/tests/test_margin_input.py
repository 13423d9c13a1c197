"""The sync accepts MT5's margin fields (issue 12): margin_level, margin_so_mode, margin_so_call, margin_so_so."""

from datetime import UTC, datetime
from decimal import Decimal as D

from reconciliation.serializers import SyncInputSerializer
from reconciliation.tests.factories import sync_payload


def validate(**account_fields):
    body = sync_payload(broker_time=datetime(2026, 3, 3, 10, tzinfo=UTC), positions=[])
    body["account"].update(account_fields)
    serializer = SyncInputSerializer(data=body)
    return serializer.is_valid(), serializer


def test_margin_fields_are_accepted_as_decimals():
    ok, serializer = validate(margin="950", margin_level="101.05", margin_so_mode=0, margin_so_call="100",
                              margin_so_so="50")  # fmt: skip
    assert ok, serializer.errors
    account = serializer.validated_data["account"]
    assert (account["margin_level"], account["margin_so_mode"]) == (D("101.05"), 0)
    assert (account["margin_so_call"], account["margin_so_so"]) == (D("100.00"), D("50.00"))


def test_margin_fields_are_optional():
    ok, serializer = validate()
    assert ok, serializer.errors
    assert "margin_so_so" not in serializer.validated_data["account"]


def test_bad_margin_fields_are_field_errors():
    assert validate(margin_so_mode=2)[1].errors["account"]["margin_so_mode"]
    assert validate(margin_so_mode=True)[1].errors["account"]["margin_so_mode"]
    assert validate(margin_so_call="100", margin_so_so="-1")[1].errors["account"]["margin_so_so"]
    assert validate(margin_so_call="100")[1].errors["account"]["margin_so_so"]  # one level without the other
