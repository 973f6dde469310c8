"""Sweep throughput: ns per (kernel x design point) for sd15 at 10^5 design points, and the speed-up over
calling the single-point path in a loop, measured in the same run.

Targets (issue: design-space sweeps): <= 20 ns per (op x design point); >= 100x faster than the loop.
Run: python bench/bench_sweep.py [points]
"""
import sys
import time

from simulator import sweep as sw
from simulator.simulate import load_model, run


VARY = ["compute.fp16=200e12:4000e12:1000:log", "memory.bandwidth=1e12:16e12:{n}:log"]  # 1000 x n points


def make_plan(points=100_000):
    """sd15 on h100 over `points` design points (a 1000 x points/1000 grid); bench_startup.py uses it too."""
    return sw.plan(["sd15"], "h100", [VARY[0], VARY[1].format(n=points // 1000)], [])


def engine_time(plan) -> tuple[float, int]:
    """Seconds to evaluate every block of the plan in this process (no output), and the points done."""
    start = time.perf_counter()
    n = 0
    for rows, n in sw.run_local(plan):
        pass
    return time.perf_counter() - start, n


def main(points=100_000):
    plan = make_plan(points)
    kernels = len(plan.jobs[0].table)
    ops = sum(len(s.ops) for s in load_model("sd15").stages)
    vectorised, n = engine_time(plan)
    per_point = vectorised / n
    print(f"sd15 on h100: {ops} ops, evaluated as {kernels} distinct kernels; {n:,} design points in "
          f"{vectorised:.2f} s: {1e9 * vectorised / (n * ops):.1f} ns per (op x design point) (target <= 20), "
          f"{1e9 * vectorised / (n * kernels):.1f} ns per (distinct kernel x design point)")
    loop_points = 20
    start = time.perf_counter()
    for i in range(loop_points):
        run("sd15", "h100", hw_overrides={"memory.bandwidth": 1e12 * (1 + i)})
    loop = (time.perf_counter() - start) / loop_points
    print(f"single-point run() in a loop: {1e3 * loop:.1f} ms per point; vectorised {1e6 * per_point:.2f} us per "
          f"point: {loop / per_point:,.0f}x faster (target >= 100x)")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
