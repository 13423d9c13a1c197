"""Guard levels on exact values with a hysteresis band (issue 15's smaller items)."""

from decimal import Decimal as D

import pytest

from guards.hysteresis import level_with_hysteresis, raw_level


def test_levels_are_decided_on_the_exact_value():
    # 19.99999 % is below the 20 % critical threshold (it used to round to 20.0000 and read critical)
    assert raw_level(value=D("19.99999"), warning=D("15"), critical=D("20")) == "warning"
    assert raw_level(value=D("20"), warning=D("15"), critical=D("20")) == "critical"


@pytest.mark.parametrize(
    ("previous", "value", "expected"),
    [
        ("critical", "19.5", "critical"),  # 19.5 ≥ 20 − 1 = 19: not cleared
        ("critical", "19", "critical"),  # exactly at the band's edge: not cleared (strictly below 19 needed)
        ("critical", "18.9", "warning"),  # cleared critical (< 19), not warning (≥ 14)
        ("critical", "13.9", "ok"),  # cleared both (< 19 and < 14)
        ("warning", "14.5", "warning"),  # 14.5 ≥ 15 − 1 = 14
        ("warning", "20", "critical"),  # escalation is immediate
        ("ok", "15", "warning"),
        (None, "14.5", "ok"),
    ],
)
def test_a_level_is_left_only_a_band_beyond_its_threshold(previous, value, expected):
    got = level_with_hysteresis(value=D(value), warning=D("15"), critical=D("20"), previous=previous, band=D("1"))
    assert got == expected


def test_oscillating_around_a_threshold_does_not_flip():
    # 20.1, 19.9, 20.1, 19.9 … with band 1: critical from the first crossing on, never back to warning
    previous, levels = None, []
    for value in ["20.1", "19.9", "20.1", "19.9"]:
        previous = level_with_hysteresis(
            value=D(value), warning=D("15"), critical=D("20"), previous=previous, band=D("1")
        )
        levels.append(previous)
    assert levels == ["critical"] * 4


def test_lower_is_worse_for_margin_levels():
    # margin level: warning ≤ 110 %, critical ≤ 70 %, band 5 points
    args = {"warning": D("110"), "critical": D("70"), "band": D("5"), "higher_is_worse": False}
    assert level_with_hysteresis(value=D("72"), previous="critical", **args) == "critical"  # 72 ≤ 75
    assert level_with_hysteresis(value=D("76"), previous="critical", **args) == "warning"  # > 75, ≤ 115
    assert level_with_hysteresis(value=D("116"), previous="warning", **args) == "ok"  # > 115
