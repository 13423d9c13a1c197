"""The one pip rule (``positions.pips``) and the data migration that recomputes stored pips (0007)."""

import importlib
from decimal import Decimal as D

import pytest
from django.apps import apps

from positions.models import Instrument
from positions.pips import CRYPTO, FX, INDEX, METAL, asset_class, pip_size


@pytest.mark.parametrize(
    ("symbol", "digits", "point", "calc_mode", "klass", "pip"),
    [
        ("EURUSD", 5, "0.00001", 0, FX, "0.0001"),  # 10 × point for a 5-digit quote
        ("USDJPY", 3, "0.001", 0, FX, "0.01"),  # 10 × point for a 3-digit quote
        ("USDJPY", 2, "0.01", 0, FX, "0.01"),  # a 2-digit quote: the point
        ("XAUUSD", 2, "0.01", 2, METAL, "0.10"),  # gold is quoted in 0.10, not its point 0.01
        ("XAUUSD", 3, "0.001", 2, METAL, "0.10"),  # whatever the broker's digits
        ("XAGUSD", 3, "0.001", 2, METAL, "0.01"),
        ("NAS100", 1, "0.1", 2, INDEX, "1.0"),  # one index point
        ("MYINDEX", 2, "0.01", 3, INDEX, "1.0"),  # calc mode CFDINDEX makes any name an index
        ("BTCUSD", 2, "0.01", 0, CRYPTO, "0.01"),  # crypto: the point
        ("XRPUSD", 5, "0.00001", 0, CRYPTO, "0.00001"),  # not 10 × point although 5 digits
    ],
)
def test_pip_by_class(symbol, digits, point, calc_mode, klass, pip):
    assert asset_class(symbol, calc_mode=calc_mode) == klass
    assert pip_size(symbol=symbol, digits=digits, point=D(point), calc_mode=calc_mode) == D(pip)


@pytest.mark.django_db
def test_migration_0007_recomputes_gold_and_index_pips():
    # given rows stored with the old rule (10 × point for 3/5 digits, else the point)
    migration = importlib.import_module("positions.migrations.0007_recompute_pip_sizes")
    gold = Instrument.objects.get(account=None, symbol="XAUUSD")
    Instrument.objects.filter(pk=gold.pk).update(pip_size=D("0.01"))
    index = Instrument.objects.create(
        symbol="US30", description="Dow", contract_size=D("1"), digits=1, point=D("0.1"), pip_size=D("0.1"),
        currency_base="USD", currency_profit="USD",
    )  # fmt: skip
    eurusd_before = Instrument.objects.get(account=None, symbol="EURUSD").pip_size
    # when
    migration.recompute_pip_sizes(apps, None)
    # then gold 0.10, the index 1.0, EURUSD unchanged (0.0001)
    gold.refresh_from_db()
    index.refresh_from_db()
    assert (gold.pip_size, index.pip_size) == (D("0.10"), D("1.0"))
    assert Instrument.objects.get(account=None, symbol="EURUSD").pip_size == eurusd_before == D("0.0001")
