"""Recompute every stored ``Instrument.pip_size`` with the one pip rule (``positions.pips.pip_size``).

Before it the rule was 10 × point for 3- and 5-digit quotes, else the point, for every symbol: gold
(XAUUSD, 2 digits) stored 0.01 where traders quote 0.10, silver (3 digits) 0.01 (unchanged), an index
CFD its point (0.1 or 0.01) instead of one index point, a 5-digit crypto quote 10 × its point. Only rows
whose pip differs are written; the reverse is a no-op (the old figures were wrong).
"""

from django.db import migrations

from positions.pips import pip_size


def recompute_pip_sizes(apps, schema_editor):
    Instrument = apps.get_model("positions", "Instrument")
    changed = []
    for instrument in Instrument.objects.all().iterator():
        pip = pip_size(
            symbol=instrument.symbol,
            digits=instrument.digits,
            point=instrument.point,
            calc_mode=instrument.trade_calc_mode,
        )
        if pip != instrument.pip_size:
            instrument.pip_size = pip
            changed.append(instrument)
    Instrument.objects.bulk_update(changed, ["pip_size"], batch_size=500)


class Migration(migrations.Migration):
    dependencies = [("positions", "0006_deals_position_identifier")]

    operations = [migrations.RunPython(recompute_pip_sizes, migrations.RunPython.noop)]
