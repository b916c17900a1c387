"""The pure figures of bench/support.py: nearest-rank percentiles, medians of runs, the comparison line."""

from bench import support
from bench.support import Result, Summary, comparison_line, percentile


def test_percentiles_are_nearest_rank():
    values = [float(v) for v in range(100, 0, -1)]  # 100..1, unsorted on purpose
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([7.0], 99) == 7.0
    assert percentile([], 99) == 0.0


def test_summary_takes_medians_and_the_line_gives_the_ratio():
    runs = [Result(ok=n, elapsed_s=1.0, latencies=[n / 1000] * 10, errors=e) for n, e in ((300, 0), (100, 1), (200, 0))]
    harbour = Summary.of(runs)
    assert (harbour.rps, harbour.p99_ms, harbour.errors) == (200.0, 200.0, 1)
    peer = Summary(rps=400.0, p50_ms=2.0, p99_ms=5.0, errors=0, runs=(400.0,))
    line = comparison_line("tokens", harbour, "oidc-provider", peer)
    assert line == ("tokens: harbour 200/s p50 200.0 ms p99 200.0 ms (1 errors) | "
                    "oidc-provider 400/s p50 2.0 ms p99 5.0 ms | ratio 0.50")
    peer_runs = Summary(rps=400.0, p50_ms=2.0, p99_ms=5.0, errors=0, runs=(600.0, 400.0, 100.0))
    assert comparison_line("tokens", harbour, "peer", peer_runs).endswith(
        "ratio 0.50 (per run 0.50 0.25 2.00; median 0.50)")


def test_busy_fractions_per_cpu():
    from bench.support import busy_fractions

    assert busy_fractions({0: (10, 100), 1: (0, 100)}, {0: (60, 200), 1: (100, 200)}) == {0: 0.5, 1: 1.0}


def test_metric_samples_of_one_family_from_a_metrics_page():
    page = "\n".join([
        "# HELP harbour_outbox_awaiting_read_back Events sent, awaiting their read-back.",
        "# TYPE harbour_outbox_awaiting_read_back gauge",
        'harbour_outbox_awaiting_read_back{relay="auth"} 2.0',
        'harbour_outbox_awaiting_read_back{relay="auth-2"} 1.0',
        "# HELP harbour_signing_signature_seconds Time per signature.",
        "# TYPE harbour_signing_signature_seconds histogram",
        'harbour_signing_signature_seconds_bucket{kind="cms",le="+Inf"} 4.0',
        'harbour_signing_signature_seconds_count{kind="cms"} 4.0',
        'harbour_signing_signature_seconds_sum{kind="cms"} 0.2',
        ""])
    awaiting = support.metric_samples(page, "harbour_outbox_awaiting_read_back")
    assert sum(sample.value for sample in awaiting) == 3.0
    histogram = {sample.name: sample.value for sample in support.metric_samples(page, "harbour_signing_signature_seconds")
                 if sample.labels == {"kind": "cms"}}
    assert histogram == {"harbour_signing_signature_seconds_count": 4.0, "harbour_signing_signature_seconds_sum": 0.2}
    assert support.metric_samples(page, "harbour_absent") == []


def test_process_cpu_counts_a_process_own_cpu_and_nothing_for_one_gone():
    import subprocess
    import sys

    # A child that burns about 0.3 s of CPU, then waits to be read.
    child = subprocess.Popen([sys.executable, "-c",
                              "import sys, time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass\n"
                              "print('done', flush=True)\nsys.stdin.read()"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "done\n"
        assert 0.3 <= support.process_cpu_s(child.pid) < 5
    finally:
        child.stdin.close()
        child.wait()
    assert support.process_cpu_s(child.pid) == 0.0


def test_a_bench_started_by_a_pinned_bench_gets_both_cpus_back():
    """bench/logins.py runs oidc-provider's runner as a subprocess: inheriting the load generator's single CPU, the
    runner pinned nothing and its provider ran beside the load generator rather than on the system-under-test CPU."""
    import os
    import subprocess
    import sys

    allowed = sorted(os.sched_getaffinity(0))
    assert len(allowed) >= 2, "the benches and this test need two CPUs"
    # In a process of its own: the test worker itself is not pinned.
    script = (
        "import os, subprocess, sys\n"
        "from bench import support\n"
        f"pinning = support.Pinning({allowed[0]}, {allowed[1]})\n"
        "support.pin_bench(pinning)\n"
        "child = 'import os; print(sorted(os.sched_getaffinity(0)))'\n"
        "inherited = subprocess.run([sys.executable, '-c', child], capture_output=True, text=True).stdout\n"
        "restored = subprocess.run([sys.executable, '-c', child], capture_output=True, text=True,\n"
        "                          preexec_fn=support.both_cpus(pinning)).stdout\n"
        "print(inherited.strip(), restored.strip(), sep='|')\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))).stdout
    inherited, restored = out.strip().split("|")
    assert inherited == str([allowed[1]])
    assert restored == str([allowed[0], allowed[1]])
    assert support.both_cpus(support.Pinning(None, None)) is None
