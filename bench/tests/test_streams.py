"""bench/streams.py: the verdict, the noise gate, the delivery check and the table (no server needed)."""

from __future__ import annotations

import math

import pytest

from bench import streams as s


def rps(*log_ratios: float) -> s.Effect:
    return s.Effect(tuple(math.exp(v) for v in log_ratios), higher_is_better=True)


def p95(*log_ratios: float) -> s.Effect:
    return s.Effect(tuple(math.exp(v) for v in log_ratios), higher_is_better=False)


def test_the_schedule_puts_each_run_with_streams_between_two_without():
    assert s.schedule(1) == ["without", "with", "without"]
    assert s.schedule(2) == ["without", "with", "without", "with", "without"]
    assert s.schedule(0) == ["without", "with", "without"]  # at least one run with streams


def test_the_reads_order_rotates_so_each_read_takes_each_place():
    paths = ("/a", "/b", "/c")
    orders = [s.path_order(paths, i) for i in range(3)]
    assert orders == [["/a", "/b", "/c"], ["/b", "/c", "/a"], ["/c", "/a", "/b"]]
    assert s.path_order(paths, 3) == ["/a", "/b", "/c"]
    assert {order[0] for order in orders} == set(paths)


def test_t95_is_the_tables_value_and_conservative_between_rows():
    # NIST/SEMATECH table 1.3.6.7.2, column 0.95
    assert s.t95(1) == 6.314
    assert s.t95(2) == 2.920
    assert s.t95(11) == 1.812  # between the rows 10 and 12: the larger quantile (row 10)
    assert s.t95(100) == 1.697
    assert s.t95(0) == math.inf


def run(state: str, **reads: dict) -> dict:
    return {"state": state, "reads": {f"/{k}": v for k, v in reads.items()}}


def test_each_run_with_streams_is_compared_with_the_mean_of_its_two_neighbours():
    runs = [
        run("without", a={"rps": 1000.0}),
        run("with", a={"rps": 900.0}),  # / ((1000 + 800) / 2 = 900) = 1.0
        run("without", a={"rps": 800.0}),
        run("with", a={"rps": 700.0}),  # / ((800 + 600) / 2 = 700) = 1.0
        run("without", a={"rps": 600.0}),
    ]
    # the machine slowed down by 40 % over the phase; the streams changed nothing
    assert s.paired_ratios(runs, "/a", "rps") == [1.0, 1.0]
    # a figure missing in a neighbour makes that ratio unknown; a read no run has gives unknowns
    runs[2] = run("without", a={})
    assert s.paired_ratios(runs, "/a", "rps") == [None, None]
    assert s.paired_ratios(runs, "/b", "rps") == [None, None]


def test_a_small_effect_with_consistent_runs_passes():
    # log ratios -0.02, 0, -0.04: mean -0.02, sample sd sqrt((0 + 0.02² + 0.02²) / 2) = 0.02,
    # worst = exp(-0.02 - t95(2) 2.920 × 0.02 / √3) = exp(-0.053717) = 0.94770 ≥ 0.90
    e = rps(-0.02, 0.0, -0.04)
    assert e.estimate == pytest.approx(math.exp(-0.02))
    assert e.worst == pytest.approx(0.94770, abs=1e-5)
    assert e.best == pytest.approx(math.exp(-0.02 + 2.920 * 0.02 / math.sqrt(3)))
    assert e.verdict == "PASS"


def test_a_clear_loss_is_a_miss_even_at_its_best_bound():
    # log ratios -0.20, -0.22, -0.18: best = exp(-0.2 + 0.033717) = exp(-0.166283) = 0.84681 < 0.90
    e = rps(-0.20, -0.22, -0.18)
    assert e.best == pytest.approx(0.84681, abs=1e-5)
    assert e.verdict == "MISS"


def test_runs_that_disagree_too_much_are_not_judged():
    # log ratios 0, -0.3, 0.1: mean -0.0667, sd 0.2082; worst = exp(-0.0667 - 2.920 × 0.1202) = 0.66 < 0.90,
    # best = exp(-0.0667 + 0.3510) = 1.33 ≥ 0.90: neither shown
    assert rps(0.0, -0.3, 0.1).verdict == "n/a"


def test_latency_and_cpu_are_worse_when_higher():
    # the mirror of the pass above: +0.02 ± 0.033717 → worst exp(0.053717) = 1.05518 ≤ 1.10
    e = p95(0.02, 0.0, 0.04)
    assert e.worst == pytest.approx(math.exp(0.053717), abs=1e-5)
    assert e.verdict == "PASS"
    assert p95(0.20, 0.22, 0.18).verdict == "MISS"  # best exp(0.166283) = 1.181 > 1.10


def test_faster_with_streams_is_never_a_miss():
    assert rps(0.3, 0.31, 0.29).verdict == "PASS"
    assert p95(-0.3, -0.31, -0.29).verdict == "PASS"


def test_too_few_or_unknown_ratios_are_not_judged():
    assert rps(-0.01).verdict == "n/a"  # one ratio: no spread to bound it
    assert s.Effect((0.99, None), higher_is_better=True).verdict == "n/a"
    assert s.Effect((), higher_is_better=True).verdict == "n/a"
    assert s.Effect((0.99, 0.0), higher_is_better=True).verdict == "n/a"


def test_combine_takes_the_worst():
    assert s.combine(["PASS", "PASS"]) == "PASS"
    assert s.combine(["PASS", "n/a"]) == "n/a"
    assert s.combine(["n/a", "MISS", "PASS"]) == "MISS"
    assert s.combine(["MISS", "FAIL"]) == "FAIL"
    assert s.combine([]) == "n/a"


def figures(rps_: float, cpu: float) -> dict:
    return {"rps": rps_, "p95": 4.0, "p99": 8.0, "cpu_ms": cpu}


def test_compare_runs_pools_the_reads_and_a_single_reads_miss_counts():
    # /a unchanged, /b loses 20 % in both runs with streams: pooled, 2 ratios of 1.0 and 2 of 0.8
    runs = [
        run("without", a=figures(1000, 2.0), b=figures(500, 3.0)),
        run("with", a=figures(1000, 2.0), b=figures(400, 3.0)),
        run("without", a=figures(1000, 2.0), b=figures(500, 3.0)),
        run("with", a=figures(1000, 2.0), b=figures(400, 3.0)),
        run("without", a=figures(1000, 2.0), b=figures(500, 3.0)),
    ]
    out = s.compare_runs(runs, ["/a", "/b"])
    assert out["/a"]["req/s"].ratios == (1.0, 1.0)
    assert out["/b"]["req/s"].ratios == (0.8, 0.8)
    # pooled: one ratio per run with streams, the reads' geometric mean √(1.0 · 0.8)
    assert out[s.POOLED]["req/s"].ratios == pytest.approx((math.sqrt(0.8), math.sqrt(0.8)))
    assert out[s.POOLED]["req/s"].estimate == pytest.approx(math.sqrt(0.8))
    assert out[s.POOLED]["req/s"].verdict == "MISS"  # √0.8 = 0.894 < 0.90 in both runs
    assert out["/a"]["CPU ms/read"].verdict == "PASS"  # identical ratios: no spread, the bound is the estimate
    assert out["/b"]["req/s"].verdict == "MISS"
    assert s.reads_verdict(out) == "MISS"
    runs[1]["reads"]["/b"] = runs[3]["reads"]["/b"] = figures(500, 3.0)
    assert s.reads_verdict(s.compare_runs(runs, ["/a", "/b"])) == "PASS"


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


def test_render_phase_prints_the_runs_the_estimate_and_the_verdicts():
    runs = [
        {**run("without", **{"api/v1/a/": figures(1000, 2.0)}), "cpu": None},
        {
            **run("with", **{"api/v1/a/": figures(950, 2.0)}),
            "cpu": {"seconds": 54.0, "stream_server_percent": 3.25, "harness_percent": 7.5},
            "open_before": 1000,
            "open_after": 1000,
        },
        {**run("without", **{"api/v1/a/": figures(1000, 2.0)}), "cpu": None},
        {**run("with", **{"api/v1/a/": figures(950, 2.0)}), "cpu": None, "open_before": 1000, "open_after": 1000},
        {**run("without", **{"api/v1/a/": figures(1000, 2.0)}), "cpu": None},
    ]
    comparisons = s.compare_runs(runs, ["/api/v1/a/"])
    report = s.check_deliveries([s.StreamRecord(user_id=1, status=200, heartbeats=1, event_ids=[5])], {5: 1})
    phase = {
        "streams": 1000,
        "runs": runs,
        "comparisons": s.comparisons_json(runs, comparisons),
        "idle": {"seconds": 30.0, "cpu_s": 0.6, "cpu_percent": 2.0, "pg_xacts": 0, "redis_commands": 3},
        "deliveries": {**report.__dict__, "verdict": report.verdict},
        "rows_written": 1,
        "syncs_posted": 1,
        "verdict_reads": s.reads_verdict(comparisons),
        "verdict": "PASS",
    }
    text = s.render_phase(phase)
    lines = text.splitlines()
    assert "5 runs, in this order: without, with, without, with, without" in lines[0]
    rps_line = next(line for line in lines if "req/s" in line and line.startswith("a/"))
    # 950 / 1000 in both runs: estimate 95.0 %, no spread so the worst bound is 95.0 % too
    assert "1000 / 1000 / 1000" in rps_line and "950 / 950" in rps_line and "95.0%" in rps_line
    assert rps_line.rstrip().endswith("PASS")
    cpu_line = next(line for line in lines if "CPU ms/read" in line and line.startswith("a/"))
    assert "2.00 / 2.00 / 2.00" in cpu_line and "100.0%" in cpu_line
    pooled = next(line for line in lines if line.startswith(s.POOLED) and "req/s" in line)
    assert "95.0%" in pooled and pooled.rstrip().endswith("PASS")
    run_row = next(line for line in lines if line.startswith("2 ") and "a/" in line)
    assert run_row.split()[:4] == ["2", "with", "a/", "950"]
    assert "stream server CPU 2.0 % of one core" in text
    assert "run 2 (with, 1000 → 1000 streams open): stream server 3.2 % of one core, this harness" in text
    assert "(the streams' clients) 7.5 %, over 54 s" in text
    assert "1/1 streams got exactly their user's rows" in text
    assert "PASS  hot reads unchanged with 1000 streams open" in text
    assert s.render_phase({"skipped": "httpx is not installed"}) == "streams phase skipped: httpx is not installed"
    assert s.render_phase(None) == ""
