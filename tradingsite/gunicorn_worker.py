"""gunicorn's gthread worker with fair accepting (``worker_class`` in ``gunicorn.conf.py``).

Every gthread worker polls the one listening socket and keeps each connection it accepted for as long
as the client keeps it alive. When many connections arrive together (a load balancer filling its
keep-alive pool, a load generator), the worker that is already awake accepts most of them, and from
then on one process — one GIL, one core — serves them while the other workers idle: the throughput of
that traffic stops at one core with the CPU largely idle (docs/performance.md, "The positions/open/
plateau"). Here a worker whose threads are all busy waits ``ACCEPT_YIELD_S`` before accepting, so a
worker with a free thread takes the connection first; when every worker is busy each waits the same
short time and nothing changes.
"""

from __future__ import annotations

import time

from gunicorn.workers.gthread import ThreadWorker

ACCEPT_YIELD_S = 0.002


class FairThreadWorker(ThreadWorker):
    """``ThreadWorker`` that lets idle workers accept first (see the module docstring)."""

    def busy_threads(self) -> int:
        """Connections being served or queued for a thread now (not idle keep-alive, not pending)."""
        return self.nr_conns - len(self.keepalived_conns) - len(self.pending_conns)

    def accept(self, listener) -> None:
        if self.busy_threads() >= self.cfg.threads:
            time.sleep(ACCEPT_YIELD_S)
        super().accept(listener)
