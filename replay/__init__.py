"""Real-price replay: a sync worker driving a tradingsite account over OHLC bars, with ground truth.

A client tool, not a Django app: it never imports Django or the project and talks to tradingsite only
over HTTP with a JWT, exactly as the sync worker next to an MT5 terminal would.

Modules: ``bars`` (CSV readers), ``bot`` (SMA-crossover strategy), ``broker`` (simulated MT5 account),
``faults`` (seeded fault injection and the ground truth), ``engine`` (the bar loop), ``client``
(HTTP + JWT), ``report`` (precision/recall, equity comparison, chart), ``__main__`` (CLI).
"""

__version__ = "1.0.0"
