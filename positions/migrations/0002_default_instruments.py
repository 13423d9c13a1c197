"""Ship the default instruments: FX majors and crosses, JPY pairs, XAUUSD, XAGUSD, BTCUSD.

Contract sizes: FX 100,000 units/lot, XAUUSD 100 oz, XAGUSD 5,000 oz, BTCUSD 1. Pip rule: 10 × point
for 3- and 5-digit quotes, else the point. Existing rows are left as they are (a sync's symbol specs
may have updated them).
"""

from decimal import Decimal

from django.db import migrations

FX_MAJORS_AND_CROSSES = [
    "EURUSD", "GBPUSD", "AUDUSD", "NZDUSD", "USDCHF", "USDCAD",
    "EURGBP", "EURCHF", "EURAUD", "EURCAD", "EURNZD", "GBPCHF", "GBPAUD", "GBPCAD", "GBPNZD",
    "AUDCAD", "AUDCHF", "AUDNZD", "NZDCAD", "NZDCHF", "CADCHF",
]  # fmt: skip
JPY_PAIRS = ["USDJPY", "EURJPY", "GBPJPY", "AUDJPY", "NZDJPY", "CADJPY", "CHFJPY"]
METALS_AND_CRYPTO = [
    # symbol, description, contract size, digits, point, base, profit currency
    ("XAUUSD", "Gold vs US Dollar", "100", 2, "0.01", "XAU", "USD"),
    ("XAGUSD", "Silver vs US Dollar", "5000", 3, "0.001", "XAG", "USD"),
    ("BTCUSD", "Bitcoin vs US Dollar", "1", 2, "0.01", "BTC", "USD"),
]


def _rows():
    for symbol in FX_MAJORS_AND_CROSSES:
        yield symbol, f"{symbol[:3]}/{symbol[3:]}", "100000", 5, "0.00001", symbol[:3], symbol[3:]
    for symbol in JPY_PAIRS:
        yield symbol, f"{symbol[:3]}/{symbol[3:]}", "100000", 3, "0.001", symbol[:3], symbol[3:]
    yield from METALS_AND_CRYPTO


def create_defaults(apps, schema_editor):
    Instrument = apps.get_model("positions", "Instrument")
    for symbol, description, contract_size, digits, point, base, profit in _rows():
        point = Decimal(point)
        Instrument.objects.get_or_create(
            symbol=symbol,
            defaults={
                "description": description,
                "contract_size": Decimal(contract_size),
                "digits": digits,
                "point": point,
                "pip_size": point * 10 if digits in (3, 5) else point,
                "currency_base": base,
                "currency_profit": profit,
                "volume_step": Decimal("0.01"),
                "volume_min": Decimal("0.01"),
            },
        )


class Migration(migrations.Migration):
    dependencies = [("positions", "0001_initial")]

    operations = [migrations.RunPython(create_defaults, migrations.RunPython.noop)]
