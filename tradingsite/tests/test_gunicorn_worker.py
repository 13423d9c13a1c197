"""Connection balance between gunicorn workers (issue 13, "the positions/open/ plateau"): a gthread
worker whose threads are all busy lets the others accept first, and a keep-alive connection is closed
after ``_max_requests_per_connection`` requests so a lopsided set of connections spreads again."""

from __future__ import annotations

import runpy
from collections import deque
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest

from tradingsite import gunicorn_worker
from tradingsite.gunicorn_worker import FairThreadWorker

ROOT = Path(__file__).resolve().parents[2]


def worker(*, conns: int, keepalived: int, pending: int = 0, threads: int = 4) -> FairThreadWorker:
    """A FairThreadWorker with just the state ``accept`` reads (no process, no sockets)."""
    instance = FairThreadWorker.__new__(FairThreadWorker)
    instance.cfg = SimpleNamespace(threads=threads)
    instance.nr_conns = conns
    instance.keepalived_conns = deque(range(keepalived))
    instance.pending_conns = deque(range(pending))
    return instance


@pytest.mark.parametrize(
    ("conns", "keepalived", "pending", "waits"),
    [
        (0, 0, 0, False),  # idle: accepts at once
        (5, 2, 0, False),  # 3 of 4 threads busy: one free
        (6, 2, 0, True),  # 4 of 4 busy: the others go first
        (20, 4, 2, True),  # 14 queued for 4 threads
    ],
)
def test_a_worker_with_every_thread_busy_waits_before_accepting(conns, keepalived, pending, waits):
    instance = worker(conns=conns, keepalived=keepalived, pending=pending)
    with (
        mock.patch.object(gunicorn_worker.time, "sleep") as sleep,
        mock.patch("gunicorn.workers.gthread.ThreadWorker.accept") as accept,
    ):
        instance.accept(listener=object())
    assert accept.call_count == 1  # it always tries: when every worker is busy nobody waits for long
    if waits:
        sleep.assert_called_once_with(gunicorn_worker.ACCEPT_YIELD_S)
    else:
        sleep.assert_not_called()


def test_the_config_closes_a_connection_after_its_hundredth_request(monkeypatch, tmp_path):
    monkeypatch.delenv("GUNICORN_MAX_REQUESTS_PER_CONNECTION", raising=False)
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    for number, closes in ((1, False), (99, False), (100, True), (250, True)):
        request = SimpleNamespace(req_number=number, must_close=False)
        config["pre_request"](None, request)
        assert request.must_close is closes, number


def test_an_exiting_worker_finishes_its_queued_warms(monkeypatch, tmp_path):
    # given a warmer with a warm queued (its thread busy with an earlier one)
    from tradingsite import caching

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    config = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    warmed: list[tuple[int, int]] = []
    monkeypatch.setattr(caching, "_warm_counted", lambda user_id, generation: warmed.append((user_id, generation)))
    monkeypatch.setattr(caching, "latest_generation", lambda user_id: 7)
    background = caching.Warmer()
    monkeypatch.setattr(caching, "warmer", background)
    background.submit(42, 7)
    # when gunicorn calls the worker_exit hook
    config["worker_exit"](None, None)
    # then the warm ran (and published) before the worker went away
    assert warmed == [(42, 7)]
