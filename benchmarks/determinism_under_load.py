"""The forecaster's determinism pair, run again and again while other processes keep every core busy.

    .venv/bin/python benchmarks/determinism_under_load.py [--runs 20] [--load N] [--stop-on-fail]

Starts ``--load`` busy loops (pure-Python ``while``/``for`` loops, default: one per CPU), then runs
pytest ``--runs`` times on the two tests that must give bit-identical results (a run trained twice,
at 1 and at 2 ambient intra-op threads; a run killed with SIGKILL and resumed, against one that never
stopped), each run in a fresh pytest process (new feature set, new child), and finally stops the
load by PID. The load processes' CPU seconds are read from ``/proc/<pid>/stat`` before they are
stopped (``load_processes_cores``: their CPU time / wall time), and the whole machine's idle share
over the run from ``/proc/stat`` (``cpu_idle_share``: near 0 means the cores were busy throughout,
whoever kept them busy). Ends with one JSON line: passes / runs, the longest run of consecutive
passes, timings.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
TESTS = [
    "tests/test_forecast_train.py::test_training_is_deterministic_on_cpu_whatever_the_thread_count",
    "tests/test_forecast_train.py::test_a_run_killed_with_sigkill_resumes_from_its_checkpoint",
]
BUSY = "import os\nparent = os.getppid()\nwhile os.getppid() == parent:\n    for _ in range(10**6): pass"
"""A busy loop that also ends if this script dies without stopping it (it then has another parent)."""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process (``/proc/<pid>/stat`` fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_times() -> tuple[int, int]:
    """(idle + iowait, total) jiffies of all CPUs since boot, from the first line of ``/proc/stat``."""
    ticks = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return ticks[3] + ticks[4], sum(ticks)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def start_load(n: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(n)]


def stop_load(procs: list[subprocess.Popen[bytes]]) -> tuple[float, bool]:
    """Kill each load process by its PID; return their CPU seconds and whether all were still running."""
    alive = all(p.poll() is None for p in procs)
    seconds = sum(cpu_seconds(p.pid) for p in procs if p.poll() is None)
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()
    return seconds, alive


def run_pair(timeout: float) -> tuple[bool, float, str]:
    """One pytest process on the two tests: (passed, seconds, the tail of its output)."""
    t = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", *TESTS, "-q", "-p", "no:cacheprovider"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        ok, out = proc.returncode == 0, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        ok, out = False, f"timed out after {timeout}s: {exc.stdout!r}"
    return ok, time.perf_counter() - t, out[-3000:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--load", type=int, default=os.cpu_count() or 2, help="busy-loop processes (one per CPU)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds allowed per pytest run")
    parser.add_argument("--stop-on-fail", action="store_true")
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, default intra-op threads {torch.get_num_threads()}")
    print(f"{args.load} busy loops, {args.runs} runs of:\n  " + "\n  ".join(TESTS), flush=True)
    results: list[dict[str, object]] = []
    load_before, idle_before = loadavg(), cpu_times()
    t0 = time.perf_counter()
    procs = start_load(args.load)
    try:
        for i in range(args.runs):
            ok, seconds, out = run_pair(args.timeout)
            results.append({"run": i + 1, "passed": ok, "seconds": round(seconds, 1), "loadavg": loadavg()})
            verdict = "pass" if ok else "FAIL"
            print(f"run {i + 1}/{args.runs}: {verdict} in {seconds:.0f}s, load {loadavg()}", flush=True)
            if not ok:
                print(out, flush=True)
                if args.stop_on_fail:
                    break
    finally:
        load_cpu, load_alive = stop_load(procs)
    wall = time.perf_counter() - t0
    idle_after = cpu_times()
    idle_share = (idle_after[0] - idle_before[0]) / max(1, idle_after[1] - idle_before[1])

    streak = best = 0
    for r in results:
        streak = streak + 1 if r["passed"] else 0
        best = max(best, streak)
    passes = sum(bool(r["passed"]) for r in results)
    seconds = sorted(float(str(r["seconds"])) for r in results)
    print(
        json.dumps(
            {
                "benchmark": "determinism_under_load",
                "tests": TESTS,
                "runs": len(results),
                "passes": passes,
                "pass_ratio": round(passes / len(results), 3) if results else None,
                "longest_pass_streak": best,
                "load_processes": args.load,
                "load_alive_to_the_end": load_alive,
                "load_processes_cores": round(load_cpu / wall, 2),
                "cpu_idle_share": round(idle_share, 3),
                "cpus": os.cpu_count(),
                "loadavg_before": load_before,
                "loadavg_after": loadavg(),
                "median_run_s": seconds[len(seconds) // 2] if seconds else None,
                "wall_s": round(wall, 1),
                "torch": torch.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
