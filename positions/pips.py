"""Pips (pure, no Django): the asset class of a symbol and the size of its pip, the one rule every app uses.

A pip is the unit traders quote price moves in; MT5's ``point`` (the smallest price step) is not one:

- FX: 10 × point for 3- and 5-digit quotes ("fractional pips": EURUSD 1.10005, USDJPY 150.005), else the
  point (EURUSD 5 digits, point 0.00001 → 0.0001; USDJPY 3 digits → 0.01). The convention of the FX
  market (the fourth decimal, the second for JPY pairs, the fifth a "pipette"):
  https://www.fxpro-malaysia.com/help-section/traders-glossary/pip
- metals: gold (XAU) 0.10 and silver (XAG) 0.01 of the quote currency, the units gold and silver moves
  are quoted in (a 2-digit gold quote's point, 0.01, is a tenth of a gold pip); platinum and palladium
  0.10 like gold (a product choice). Gold's 0.10: https://positionsizecalculators.net/xauusd-pip-calculator
  ("a 1.00 dollar move in gold is commonly treated as 10 gold pips");
- indices: 1.0, one index point (US30 39 000.0 → 39 001.0 is a one-point, one-pip move);
- crypto: no market-wide pip convention exists (BTC near 60 000 and DOGE near 0.10 share no sensible
  fixed step), so the pip is the point; the guards measure crypto tolerances in percent of price.

The ledger stores the result in ``Instrument.pip_size`` (set from the sync's ``symbol_info()`` by
:func:`pip_size`), so every display of pips (a position's P&L in pips, slippage) uses the same figure;
``guards.models.InstrumentGuardSetting.pip_size`` may override it per account for the guards and the
reconciliation.
"""

from __future__ import annotations

from decimal import Decimal

FX = "fx"
METAL = "metal"
INDEX = "index"
CRYPTO = "crypto"
ASSET_CLASSES = (FX, METAL, INDEX, CRYPTO)

# MT5 ENUM_SYMBOL_CALC_MODE: 3 = SYMBOL_CALC_MODE_CFDINDEX (profit of an index CFD).
CALC_MODE_CFDINDEX = 3

METAL_PIP = {"XAU": Decimal("0.10"), "XAG": Decimal("0.01"), "XPT": Decimal("0.10"), "XPD": Decimal("0.10")}
INDEX_PIP = Decimal("1.0")
CRYPTO_BASES = frozenset(
    {"BTC", "ETH", "LTC", "XRP", "BCH", "SOL", "ADA", "DOT", "DOGE", "BNB", "AVAX", "LINK", "XLM", "TRX"}
)
# Common index CFD names across MT5 brokers (suffixes such as ".cash" are stripped before the lookup).
INDEX_NAMES = frozenset(
    {
        "US30", "US100", "US500", "USTEC", "NAS100", "SPX500", "SP500", "DJ30", "DE30", "DE40", "GER30",
        "GER40", "UK100", "FRA40", "F40", "EU50", "STOXX50", "JP225", "JPN225", "AUS200", "HK50", "ES35",
    }
)  # fmt: skip


def asset_class(symbol: str, *, calc_mode: int | None = None) -> str:
    """Classify a symbol: ``metal`` (XAU/XAG/XPT/XPD…), ``crypto`` (a known coin as base), ``index``
    (``calc_mode`` CFDINDEX or a common index CFD name, suffixes such as ``.cash`` ignored), else ``fx``."""
    name = symbol.upper()
    if name[:3] in METAL_PIP:
        return METAL
    if any(name.startswith(base) for base in CRYPTO_BASES):
        return CRYPTO
    if calc_mode == CALC_MODE_CFDINDEX or name.split(".")[0].rstrip("_") in INDEX_NAMES:
        return INDEX
    return FX


def fx_pip_size(*, digits: int, point: Decimal) -> Decimal:
    """The FX rule alone: 10 × point for 3- and 5-digit quotes, else the point (price units)."""
    return point * 10 if digits in (3, 5) else point


def pip_size(
    *, symbol: str, digits: int, point: Decimal, calc_mode: int | None = None, override: Decimal | None = None
) -> Decimal:
    """The symbol's pip in price units (quote currency): ``override`` when set, else by class (module
    docstring): FX :func:`fx_pip_size`, metals ``METAL_PIP``, indices 1.0, crypto the point."""
    if override is not None:
        return override
    klass = asset_class(symbol, calc_mode=calc_mode)
    if klass == METAL:
        return METAL_PIP[symbol.upper()[:3]]
    if klass == INDEX:
        return INDEX_PIP
    if klass == CRYPTO:
        return point
    return fx_pip_size(digits=digits, point=point)
