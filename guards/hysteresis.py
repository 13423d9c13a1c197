"""Guard levels with hysteresis (pure): a level is entered at its threshold and left only a band beyond it.

Without a band a measure oscillating around a threshold re-opens, escalates and flips the close signal
on every crossing. Levels are decided on the exact (unrounded) value: 19.99999 % is below a 20 %
critical threshold. Entering is immediate (value at the threshold, inclusive); leaving a level needs
the value to clear that level's threshold by ``band`` (same unit as the value).
"""

from __future__ import annotations

from decimal import Decimal

from guards.models import LEVEL_RANK, Level

ORDER = (Level.OK, Level.WARNING, Level.CRITICAL)


def raw_level(*, value: Decimal, warning: Decimal, critical: Decimal, higher_is_worse: bool = True) -> str:
    """The level without memory: ``critical`` at or past ``critical``, ``warning`` at or past ``warning``.

    ``higher_is_worse`` False is for measures such as the margin level, where lower values are worse.
    """
    past = (lambda threshold: value >= threshold) if higher_is_worse else (lambda threshold: value <= threshold)
    if past(critical):
        return Level.CRITICAL
    if past(warning):
        return Level.WARNING
    return Level.OK


def level_with_hysteresis(
    *,
    value: Decimal,
    warning: Decimal,
    critical: Decimal,
    previous: str | None,
    band: Decimal,
    higher_is_worse: bool = True,
) -> str:
    """The level after this measure, given the ``previous`` one (None or ``ok`` on a first measure).

    A higher level than before is taken at once; a lower one only as far as the value has cleared each
    level's threshold by ``band``: with warning 15, critical 20, band 1, a drawdown falling from 21 % to
    19.5 % stays critical, to 18.9 % becomes warning, and to 13.9 % ok.
    """
    level = raw_level(value=value, warning=warning, critical=critical, higher_is_worse=higher_is_worse)
    if previous is None or LEVEL_RANK[level] >= LEVEL_RANK[previous]:
        return level
    thresholds: dict[str, Decimal] = {Level.WARNING: warning, Level.CRITICAL: critical}
    current = previous
    while LEVEL_RANK[current] > LEVEL_RANK[level]:
        threshold = thresholds[current]
        cleared = value < threshold - band if higher_is_worse else value > threshold + band
        if not cleared:
            break
        current = ORDER[LEVEL_RANK[current] - 1]
    return current
