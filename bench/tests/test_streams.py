"""bench/streams.py: the verdict, the noise gate, the delivery check and the table (no server needed)."""

from __future__ import annotations

import pytest

from bench import streams as s


def rps(without: float, with_streams: float, again: float) -> s.Comparison:
    return s.Comparison(without, with_streams, again, higher_is_better=True)


def p95(without: float, with_streams: float, again: float) -> s.Comparison:
    return s.Comparison(without, with_streams, again, higher_is_better=False)


def test_throughput_within_ten_percent_of_the_mean_without_is_a_pass():
    # baseline (1000 + 1040) / 2 = 1020; 920 / 1020 = 0.902 >= 0.90
    c = rps(1000, 920, 1040)
    assert c.baseline == 1020
    assert c.ratio == pytest.approx(920 / 1020)
    assert c.verdict == "PASS"


def test_throughput_more_than_ten_percent_below_is_a_miss():
    # 910 / 1020 = 0.892 < 0.90
    assert rps(1000, 910, 1040).verdict == "MISS"


def test_faster_with_streams_is_never_a_miss():
    assert rps(1000, 1500, 1000).verdict == "PASS"
    assert p95(4.0, 2.0, 4.0).verdict == "PASS"


def test_latency_more_than_ten_percent_above_is_a_miss():
    # baseline (4.0 + 4.2) / 2 = 4.1; 4.5 / 4.1 = 1.098 <= 1.10 passes, 4.6 / 4.1 = 1.122 misses
    assert p95(4.0, 4.5, 4.2).verdict == "PASS"
    assert p95(4.0, 4.6, 4.2).verdict == "MISS"


def test_noise_gate_two_runs_without_that_differ_by_more_than_ten_percent_are_not_judged():
    # |1000 - 1250| / 1125 = 0.222 > 0.10: even a clear drop is n/a
    c = rps(1000, 500, 1250)
    assert c.noise == pytest.approx(250 / 1125)
    assert c.verdict == "n/a"
    # |1000 - 1100| / 1050 = 0.095: judged
    assert rps(1000, 500, 1100).verdict == "MISS"


def test_a_missing_figure_is_not_judged():
    assert s.Comparison(1000, None, 1000, higher_is_better=True).verdict == "n/a"
    assert rps(0, 0, 0).verdict == "n/a"


def test_combine_takes_the_worst():
    assert s.combine(["PASS", "PASS"]) == "PASS"
    assert s.combine(["PASS", "n/a"]) == "n/a"
    assert s.combine(["n/a", "MISS", "PASS"]) == "MISS"
    assert s.combine(["MISS", "FAIL"]) == "FAIL"
    assert s.combine([]) == "n/a"


def test_compare_runs_reads_the_wrk_figures_of_each_run():
    runs = {
        "without": {"/a": {"rps": 1000.0, "p95": 4.0, "p99": 8.0}},
        "with": {"/a": {"rps": 990.0, "p95": 4.1, "p99": 20.0}},
        "without again": {"/a": {"rps": 1010.0, "p95": 4.0, "p99": 8.0}},
    }
    out = s.compare_runs(runs, ["/a", "/b"])
    assert out["/a"]["req/s"].verdict == "PASS"
    assert out["/a"]["p95"].verdict == "PASS"  # 4.1 / 4.0 = 1.025
    assert out["/a"]["p99"].verdict == "MISS"  # 20 / 8 = 2.5
    assert out["/b"]["req/s"].verdict == "n/a"  # no figures


def test_sse_lines_count_heartbeats_and_ids():
    record = s.StreamRecord(user_id=1)
    for line in ["retry: 2000", "", ": heartbeat", "id: 17", 'data: {"id":17}', "", "id: x", ": heartbeat"]:
        s.parse_sse_line(line, record)
    assert record.heartbeats == 2
    assert record.event_ids == [17]


def test_every_stream_with_exactly_its_users_rows_passes():
    owner_of = {10: 1, 11: 2, 12: 1}
    records = [
        s.StreamRecord(user_id=1, status=200, heartbeats=1, event_ids=[10, 12]),
        s.StreamRecord(user_id=2, status=200, heartbeats=3, event_ids=[11]),
        s.StreamRecord(user_id=3, status=200, heartbeats=1, event_ids=[]),  # a user without new rows
    ]
    report = s.check_deliveries(records, owner_of)
    assert (report.streams, report.connected, report.exact, report.with_heartbeat) == (3, 3, 3, 3)
    assert (report.leaks, report.missing, report.unexpected) == (0, 0, 0)
    assert report.verdict == "PASS"


def test_a_row_of_another_user_is_a_leak_and_fails():
    owner_of = {10: 1, 11: 2}
    records = [
        s.StreamRecord(user_id=1, status=200, heartbeats=1, event_ids=[10, 11]),
        s.StreamRecord(user_id=2, status=200, heartbeats=1, event_ids=[11]),
    ]
    report = s.check_deliveries(records, owner_of)
    assert report.leaks == 1
    assert report.exact == 1
    assert report.verdict == "FAIL"
    assert "user 1" in report.examples[0]


@pytest.mark.parametrize(
    ("record", "field", "count"),
    [
        (s.StreamRecord(user_id=1, status=200, heartbeats=1, event_ids=[10]), "missing", 1),
        (s.StreamRecord(user_id=1, status=200, heartbeats=1, event_ids=[10, 10, 12]), "unexpected", 1),
        (s.StreamRecord(user_id=1, status=200, heartbeats=1, event_ids=[12, 10]), "unexpected", 0),  # order only
        (s.StreamRecord(user_id=1, status=200, heartbeats=0, event_ids=[10, 12]), "with_heartbeat", 0),
        (s.StreamRecord(user_id=1, status=401, heartbeats=0, event_ids=[]), "connected", 0),
    ],
)
def test_missing_duplicated_reordered_silent_or_refused_streams_fail(record, field, count):
    report = s.check_deliveries([record], {10: 1, 12: 1})
    assert getattr(report, field) == count
    assert report.verdict == "FAIL"


def test_render_phase_prints_the_runs_the_ratio_and_the_verdicts():
    comparisons = s.compare_runs(
        {
            "without": {"/api/v1/a/": {"rps": 1000.0, "p95": 4.0, "p99": 8.0}},
            "with": {"/api/v1/a/": {"rps": 950.0, "p95": 4.0, "p99": 8.0}},
            "without again": {"/api/v1/a/": {"rps": 1000.0, "p95": 4.0, "p99": 8.0}},
        },
        ["/api/v1/a/"],
    )
    report = s.check_deliveries([s.StreamRecord(user_id=1, status=200, heartbeats=1, event_ids=[5])], {5: 1})
    phase = {
        "streams": 1000,
        "comparisons": {
            path: {
                name: {**c.__dict__, "ratio": c.ratio, "noise": c.noise, "verdict": c.verdict} for name, c in f.items()
            }
            for path, f in comparisons.items()
        },
        "idle": {"seconds": 30.0, "cpu_s": 0.6, "cpu_percent": 2.0, "pg_xacts": 0, "redis_commands": 3},
        "with_cpu": {"seconds": 54.0, "stream_server_percent": 3.25, "harness_percent": 7.5},
        "deliveries": {**report.__dict__, "verdict": report.verdict},
        "rows_written": 1,
        "syncs_posted": 1,
        "verdict_reads": "PASS",
        "verdict": "PASS",
    }
    text = s.render_phase(phase)
    lines = text.splitlines()
    rps_line = next(line for line in lines if "req/s" in line and "a/" in line)
    assert "1000" in rps_line and "950" in rps_line and "95.0%" in rps_line and "PASS" in rps_line
    assert "stream server CPU 2.0 % of one core" in text
    assert "stream server CPU 3.2 % of one core, this harness (the streams' clients) 7.5 %" in text
    assert "1/1 streams got exactly their user's rows" in text
    assert "PASS  hot reads unchanged with 1000 streams open" in text
    assert s.render_phase({"skipped": "httpx is not installed"}) == "streams phase skipped: httpx is not installed"
    assert s.render_phase(None) == ""
