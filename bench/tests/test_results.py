"""bench/results.py on captured output of prometheus_client, Locust and wrk; the wrk Lua against a stub server."""

from __future__ import annotations

import http.server
import shutil
import subprocess
import threading
from collections import Counter
from pathlib import Path

import pytest

from bench import results as r

ROOT = Path(__file__).resolve().parents[2]

# Captured from prometheus_client 0.26 in multi-process mode (the service's /metrics under gunicorn).
METRICS_BEFORE = """\
# HELP tradingsite_requests_total Requests answered, per view, method and status code.
# TYPE tradingsite_requests_total counter
tradingsite_requests_total{method="GET",status="200",view="reconciliation:status"} 100.0
tradingsite_requests_total{method="GET",status="500",view="reconciliation:status"} 2.0
# TYPE tradingsite_sql_queries_total counter
tradingsite_sql_queries_total{view="reconciliation:status"} 12.0
# TYPE tradingsite_redis_commands_total counter
tradingsite_redis_commands_total{view="reconciliation:status"} 410.0
# TYPE tradingsite_cache_events_total counter
tradingsite_cache_events_total{layer="page",result="hit",view="reconciliation:status"} 90.0
tradingsite_cache_events_total{layer="page",result="miss",view="reconciliation:status"} 12.0
tradingsite_cache_events_total{layer="data",result="hit",view="reconciliation:status"} 8.0
tradingsite_cache_events_total{layer="data",result="miss",view="reconciliation:status"} 4.0
# TYPE tradingsite_request_duration_seconds histogram
tradingsite_request_duration_seconds_sum{method="GET",view="reconciliation:status"} 0.003
tradingsite_request_duration_seconds_bucket{le="0.005",method="GET",view="reconciliation:status"} 1.0
tradingsite_request_duration_seconds_bucket{le="+Inf",method="GET",view="reconciliation:status"} 1.0
tradingsite_requests_total{method="GET",status="200",view="healthz"} 5.0
"""

METRICS_AFTER = """\
tradingsite_requests_total{method="GET",status="200",view="reconciliation:status"} 1100.0
tradingsite_requests_total{method="GET",status="500",view="reconciliation:status"} 2.0
tradingsite_requests_total{method="GET",status="401",view="reconciliation:status"} 3.0
tradingsite_sql_queries_total{view="reconciliation:status"} 52.0
tradingsite_redis_commands_total{view="reconciliation:status"} 2410.0
tradingsite_cache_events_total{layer="page",result="hit",view="reconciliation:status"} 1050.0
tradingsite_cache_events_total{layer="page",result="miss",view="reconciliation:status"} 52.0
tradingsite_cache_events_total{layer="data",result="hit",view="reconciliation:status"} 38.0
tradingsite_cache_events_total{layer="data",result="miss",view="reconciliation:status"} 14.0
tradingsite_requests_total{method="GET",status="200",view="healthz"} 5.0
tradingsite_requests_total{method="POST",status="201",view="reconciliation:sync"} 60.0
tradingsite_sql_queries_total{view="reconciliation:sync"} 1500.0
"""

# Captured from `wrk -t2 -c4 -d1s -s bench/wrk/rotate_tokens.lua ...` (wrk 4.1.0, Debian 12).
WRK_OUTPUT = """\
Running 1s test @ http://127.0.0.1:18555/x
  2 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    42.37ms    8.72ms  48.31ms   95.65%
    Req/Sec    46.00      9.40    60.00     70.00%
  92 requests in 1.00s, 10.59KB read
Requests/sec:     91.92
Transfer/sec:     10.58KB
WRK_JSON {"requests":92,"duration_us":1000862,"bytes":10840,"errors":{"connect":0,"read":0,"write":0,"status":0,\
"timeout":0},"latency_us":{"mean":42372.0,"stdev":8723.9,"p50":43972,"p90":44419,"p95":47890,"p99":48311,"max":48311}}
"""

# Locust 2.47 <prefix>_stats.csv (header as written by locust.stats.StatsCSV).
LOCUST_CSV = """\
Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,\
Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%
GET,/api/v1/guards/status/,980,0,3,3.6,1.2,41.0,512.0,16.33,0.0,3,4,4,4,5,7,9,12,41,41,41
GET,/api/v1/reconciliation/status/,2450,1,3,3.9,1.0,60.2,1024.0,40.83,0.02,3,4,4,5,6,8,11,15,60,60,60
VISIBLE,sync visible: /api/v1/positions/open/,200,0,2500,2410.1,3.1,4980.0,3.0,3.33,0.0,\
2500,3200,3700,4000,4500,4800,4900,4980,4980,4980,4980
,Aggregated,3630,1,3,52.1,1.0,4980.0,700.2,60.5,0.02,3,4,4,5,7,10,40,3000,4980,4980,4980
"""


def test_prometheus_text_is_grouped_per_view_and_differenced():
    before = r.view_counters(r.parse_prometheus(METRICS_BEFORE))
    after = r.view_counters(r.parse_prometheus(METRICS_AFTER))
    delta = r.counters_delta(after, before)
    status = delta["reconciliation:status"]
    # 1100 + 2 + 3 − (100 + 2) = 1003 requests, 1000 of them 200 and 3 of them 401; no new 5xx
    assert status.requests == 1003 and status.ok == 1000 and status.non_ok == 3 and status.server_errors == 0
    assert status.by_status == {"200": 1000, "500": 0, "401": 3}
    # SQL 52 − 12 = 40 over 1003 requests; Redis 2410 − 410 = 2000
    assert status.sql_per_request() == pytest.approx(40 / 1003)
    assert status.redis_per_request() == pytest.approx(2000 / 1003)
    # page: 960 hits, 40 misses → 96 %; data: 30 hits, 10 misses → 75 %;
    # all lookups: (960 + 30) / (960 + 40 + 30 + 10) = 990 / 1040
    assert status.page_hit_rate() == pytest.approx(0.96)
    assert status.data_hit_rate() == pytest.approx(0.75)
    assert status.hit_rate() == pytest.approx(990 / 1040)
    assert delta["healthz"].requests == 0
    assert delta["reconciliation:sync"].sql_per_request() == 25.0  # 1500 / 60, a view absent before
    total = r.total_counters(delta, ["reconciliation:status", "reconciliation:sync", "missing"])
    assert total.requests == 1063 and total.sql == 1540


def test_hit_rate_counts_read_requests_served_from_a_cache_layer():
    # given 90 page hits, 8 data-layer answers and 2 computations of positions:open
    text = "\n".join(
        [
            'tradingsite_read_requests_total{served_from="page",view="positions:open"} 90.0',
            'tradingsite_read_requests_total{served_from="data",view="positions:open"} 8.0',
            'tradingsite_read_requests_total{served_from="compute",view="positions:open"} 2.0',
            'tradingsite_cache_events_total{layer="page",result="hit",view="positions:open"} 90.0',
            'tradingsite_cache_events_total{layer="page",result="miss",view="positions:open"} 10.0',
        ]
    )
    counters = r.view_counters(r.parse_prometheus(text))["positions:open"]
    # then the request-level hit rate is (90 + 8) / 100, not the lookup ratio 90 / 100
    assert counters.hit_rate() == pytest.approx(0.98)
    assert counters.lookup_hit_rate() == pytest.approx(0.90)


def test_match_view_prefers_the_exact_route_name():
    labels = ["reconciliation:status", "reconciliation:sync", "positions:open", "healthz"]
    assert r.match_view(labels, "positions:open") == "positions:open"
    assert r.match_view(labels, "status") == "reconciliation:status"
    assert r.match_view(labels, "guards") is None


def test_wrk_summary_line_is_parsed_into_milliseconds():
    figures = r.parse_wrk(WRK_OUTPUT)
    assert figures["requests"] == 92
    assert figures["rps"] == pytest.approx(92 / 1.000862)
    assert figures["p50"] == pytest.approx(43.972) and figures["p99"] == pytest.approx(48.311)
    assert figures["errors"] == 0
    with pytest.raises(ValueError, match="no WRK_JSON line"):
        r.parse_wrk("Requests/sec: 10\n")


def test_locust_stats_csv_rows_by_name():
    rows = r.parse_locust_stats_csv(LOCUST_CSV)
    assert rows["/api/v1/reconciliation/status/"]["requests"] == 2450
    assert rows["/api/v1/reconciliation/status/"]["failures"] == 1
    assert rows["/api/v1/reconciliation/status/"]["p95"] == 8
    assert rows["/api/v1/guards/status/"]["rps"] == pytest.approx(16.33)
    assert rows["sync visible: /api/v1/positions/open/"]["type"] == "VISIBLE"
    assert rows["Aggregated"]["p99"] == 3000


def test_request_log_phases_count_5xx_transport_errors_and_percentiles():
    lines = [
        # end_epoch,type,name,response_ms,status,error
        "100.010,GET,/api/v1/reconciliation/status/,10.00,200,\n",  # started 100.000
        "100.520,GET,/api/v1/positions/open/,20.00,200,\n",  # started 100.500
        "101.030,GET,/api/v1/guards/status/,30.00,500,CatchResponseError\n",  # started 101.000
        "101.540,POST,/api/v1/reconciliation/syncs/,40.00,0,ConnectionRefusedError\n",  # started 101.500
        "101.900,VISIBLE,sync visible: /api/v1/guards/status/,2500.00,0,\n",  # not an HTTP request
        "102.100,GET,/api/v1/reconciliation/status/,200.00,200,\n",  # started 101.900, ended in the next phase
        "103.000,GET,/api/v1/reconciliation/status/,5.00,200,\n",  # started 102.995
        "garbage\n",
    ]
    logged = r.parse_request_log(lines)
    assert len(logged) == 7
    stats = r.phase_stats(logged, 100.0, 102.0)  # requests that ended in [100, 102)
    assert stats["requests"] == 4 and stats["ok"] == 2
    assert stats["server_errors"] == 1 and stats["transport_errors"] == 1
    # nearest rank over [10, 20, 30, 40]: p50 = 2nd = 20, p95 = ceil(3.8) = 4th = 40
    assert stats["p50"] == 20.0 and stats["p95"] == 40.0 and stats["max"] == 40.0
    assert r.phase_stats(logged, 102.0, 104.0)["requests"] == 2
    assert r.first_success_after(logged, 100.2, "/status/", status=200) == pytest.approx(101.9)
    assert r.first_success_after(logged, 100.2, "/syncs/", status=201) is None


def test_checks_and_table_rendering():
    assert r.check("p95 <= 10 ms", 8.0, 10.0).verdict == "PASS"
    assert r.check("hit rate >= 98 %", 0.5, 0.98, op=">=", fmt="{:.0%}").measured == "50%"
    assert r.check("hit rate >= 98 %", 0.5, 0.98, op=">=").verdict == "MISS"
    assert r.check("not there", None, 1.0).verdict == "n/a "
    table = r.render_table(["endpoint", "req/s"], [["status", "40.8"], ["open", "1234.5"]])
    assert table.splitlines() == ["endpoint   req/s", "--------  ------", "status      40.8", "open      1234.5"]
    assert r.fmt_num(0.987, 1, percent=True) == "98.7%" and r.fmt_num(None) == "-"


class _RecordingHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen: Counter = Counter()

    def do_GET(self):  # noqa: N802 - http.server's naming
        _RecordingHandler.seen[(self.headers.get("Authorization"), self.headers.get("Accept"))] += 1
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)")
def test_wrk_lua_rotates_every_token_with_a_stable_accept_header(tmp_path):
    # given three tokens and a stub server that records the headers it receives
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("tokA\ntokB\n\ntokC\n")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _RecordingHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _RecordingHandler.seen.clear()
    try:
        # when wrk runs the script for one second
        result = subprocess.run(
            ["wrk", "-t1", "-c3", "-d1s", "-s", str(ROOT / "bench/wrk/rotate_tokens.lua"),
             f"http://127.0.0.1:{server.server_address[1]}/api/v1/reconciliation/status/", "--", str(tokens)],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    finally:
        server.shutdown()
    # then every token was used, always with the JSON Accept header, and the summary parses
    assert result.returncode == 0, result.stderr
    seen = _RecordingHandler.seen
    assert {auth for auth, _ in seen} == {"Bearer tokA", "Bearer tokB", "Bearer tokC"}
    assert {accept for _, accept in seen} == {"application/json"}
    figures = r.parse_wrk(result.stdout)
    assert figures["requests"] >= sum(seen.values()) - 3  # requests in flight at the end are not counted
    assert figures["errors"] == 0
