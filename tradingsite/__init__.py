"""tradingsite: monitoring back end for automated MetaTrader 5 trading accounts."""

__version__ = "0.1.0"
