"""Start-up and end-to-end overheads, as a user meets them: whole processes, timed from outside.

Prints the median wall time of each command over several runs (after one warm-up) minus a bare interpreter
start (`python -c pass`), and the cost of a 10^5-point sweep written to CSV against its in-engine time (the
plan of bench_sweep.py, evaluated in this process without writing).

Targets (issue: robustness and start-up): `--help` <= 0.3 s and `run sd15 --hardware a100` <= 0.8 s beyond a
bare interpreter; a 10^5-point sweep to CSV <= 2x its in-engine time.
Run: python bench/bench_startup.py [runs]
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

SWEEP = ["sweep", "sd15", "--hardware", "h100", "--vary", "compute.fp16=200e12:4000e12:1000:log",
         "--vary", "memory.bandwidth=1e12:16e12:100:log"]


def wall(args: list, runs: int) -> float:
    """Median wall seconds of a whole process (output discarded), after one untimed warm-up run."""
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    times = []
    for i in range(runs + 1):
        start = time.perf_counter()
        subprocess.run(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def in_process_sweep(out: str) -> tuple[float, float, float]:
    """(plan, evaluate, evaluate + write) seconds for the 10^5-point sweep, in this process."""
    from bench_sweep import engine_time, make_plan

    from simulator import sweep as sw
    from simulator.writers import open_writer
    start = time.perf_counter()
    plan = make_plan(100_000)
    planned = time.perf_counter() - start
    engine, _ = engine_time(plan)
    start = time.perf_counter()
    writer = open_writer(out, plan.columns)
    for rows, _ in sw.run_local(plan):
        writer.write(rows)
    writer.close()
    return planned, engine, time.perf_counter() - start


def main(runs: int = 5) -> None:
    py = [sys.executable]
    bare = wall(py + ["-c", "pass"], runs)
    print(f"bare interpreter (python -c pass): {bare:.3f} s (median of {runs})")
    for label, args, target in (("--help", ["--help"], 0.3), ("run sd15 --hardware a100", ["run", "sd15", "--hardware",
                                                                                              "a100"], 0.8),
                                ("list models", ["list", "models"], None),
                                ("list hardware", ["list", "hardware"], None)):
        t = wall(py + ["-m", "simulator"] + args, runs)
        goal = f" (target <= {target} s)" if target else ""
        print(f"python -m simulator {label}: {t:.3f} s, {t - bare:.3f} s beyond the interpreter{goal}")
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "sweep.csv")
        planned, engine, written = in_process_sweep(out)
        cli = wall(py + ["-m", "simulator"] + SWEEP + ["--out", out], max(1, runs // 2))
    print(f"10^5-point sweep of sd15: in-engine {engine:.2f} s; evaluate + write CSV {written:.2f} s "
          f"({written / engine:.2f}x); plan {planned:.2f} s; whole `sweep ... --out x.csv` process {cli:.2f} s "
          f"({cli / engine:.2f}x in-engine, {(cli - bare) / engine:.2f}x without the interpreter start; "
          f"target <= 2x)")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
