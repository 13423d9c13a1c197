"""gunicorn configuration for production: ``gunicorn -c gunicorn.conf.py tradingsite.wsgi``.

gthread workers (keep-alive support, threads for an I/O-bound app) that accept connections fairly
(tradingsite.gunicorn_worker), the worker heartbeat file on /dev/shm, no preload (no DB pool opened
before fork), and Prometheus multi-process mode so /metrics aggregates every worker. The same file
serves the read pool and the write pool (``GUNICORN_POOL``, deploy/nginx.conf). Everything is
overridable from the env.
"""

import os
import shutil
import tempfile

# Must be set before prometheus_client is imported anywhere (master or workers).
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="tradingsite-prom-")
_prom_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"]

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
worker_class = "tradingsite.gunicorn_worker.FairThreadWorker"
workers = int(os.environ.get("GUNICORN_WORKERS", str(2 * (os.cpu_count() or 1))))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# Longer than Locust's and browsers' idle gaps, so connections are reused.
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE_S", "75"))
# Well above the worst degraded path (cache calls give up in ~0.1 s, DB statements in 10 s).
timeout = int(os.environ.get("GUNICORN_TIMEOUT_S", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT_S", "30"))
# Recycle workers now and then (leak insurance); rarely enough that re-importing Django (~1 s CPU) stays negligible.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "200000"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "20000"))
# Close a keep-alive connection after this many requests on it (nginx's keepalive_requests). A gthread
# worker keeps every connection it accepted, and a burst of new connections (a load balancer's pool, a
# load generator) is often accepted mostly by one worker: that worker's GIL then caps the throughput of
# all of them while the others idle. Reconnecting now and then lets the accept race, which idle workers
# win, spread them again. 0 = never.
_max_requests_per_connection = int(os.environ.get("GUNICORN_MAX_REQUESTS_PER_CONNECTION", "100"))
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
preload_app = False
# The app writes its own JSON access line per request (tradingsite.observability).
accesslog = None
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
limit_request_field_size = 8190


def on_starting(server):
    """Start every master run with an empty metrics directory — except the write pool's, which shares
    the read pool's directory (``GUNICORN_POOL=write``, deploy/nginx.conf) and starts after it."""
    if os.environ.get("GUNICORN_POOL") == "write":
        return
    for name in os.listdir(_prom_dir):
        path = os.path.join(_prom_dir, name)
        if os.path.isfile(path):
            os.unlink(path)
        else:
            shutil.rmtree(path, ignore_errors=True)


def child_exit(server, worker):
    """Tell prometheus_client that a worker's live gauges are gone."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def pre_request(worker, req):
    """Ask gunicorn to close the connection after its ``_max_requests_per_connection``-th request
    (``req.req_number`` counts the requests of one connection from 1)."""
    if _max_requests_per_connection and req.req_number >= _max_requests_per_connection:
        req.must_close = True


def worker_exit(server, worker):
    """Finish the warms this worker still has queued before it exits (a recycle after ``max_requests``, a
    graceful restart): a dropped warm never publishes, and its user's readers would stay on the previous
    data until the published generation expires (one page TTL). Waits at most 5 s, within
    ``graceful_timeout``."""
    from tradingsite.caching import warmer

    warmer.join(timeout=5)
