"""GuardConfigSerializer validates exactly as GuardConfig.clean."""

from decimal import Decimal as D

import pytest

from accounts.tests.factories import default_account
from guards.serializers import GuardConfigSerializer
from guards.services import guard_config_get_or_create

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def account(user):
    """The user's account (the one the test syncs name), as after the user's first sync."""
    return default_account(user)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"drawdown_warning_pct": "0.15"}, "drawdown_warning_pct"),  # a fraction, not 15 %
        ({"drawdown_warning_pct": "25"}, "drawdown_warning_pct"),  # 25 ≥ critical 20
        ({"spread_critical_pct": "101"}, "spread_critical_pct"),  # above 100 %
        ({"gap_warning_pct": "0"}, "gap_warning_pct"),
        ({"min_equity": "-1"}, "min_equity"),
    ],
)
def test_guard_config_serializer_rejects_what_clean_rejects(user, data, field):
    config = guard_config_get_or_create(user_id=user.pk, account_id=default_account(user).pk)
    serializer = GuardConfigSerializer(config, data=data, partial=True)
    assert not serializer.is_valid()
    assert field in serializer.errors


def test_guard_config_serializer_accepts_a_consistent_patch(user):
    config = guard_config_get_or_create(user_id=user.pk, account_id=default_account(user).pk)
    serializer = GuardConfigSerializer(
        config, data={"drawdown_warning_pct": "10", "drawdown_critical_pct": "12.5"}, partial=True
    )
    assert serializer.is_valid(), serializer.errors
    assert serializer.validated_data == {"drawdown_warning_pct": D("10"), "drawdown_critical_pct": D("12.5")}
    assert GuardConfigSerializer(config).data["gap_warning_pct"] == "5.000"
