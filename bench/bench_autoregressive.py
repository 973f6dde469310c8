"""Speed of one analysis of an autoregressive model as the output grows: llama2-7b, 2048-token prompt.

Target (issue: scale-out and serving, item 6): <= 10 ms per analysis (`run()`: build the model, lower it, cost
it on one device) for any output length up to 32k tokens. The decode stage's kernels are written as arrays over
the step where they are affine in it, and `run()` writes them only at the ends of runs of steps over which their
costs are affine (`mapping.closed_form_runs`); `simulate.CLOSED_FORM = False` writes every step (timed beside:
the same answer), and `lower(..., per_iteration=True)` lowers every step on its own (the path before that).
Prints the figures; it is a benchmark, not a timed test.
Run: python bench/bench_autoregressive.py
"""
import os
import time

from simulator import mapping, simulate
from simulator.engine import FULL, ROOFLINE
from simulator.hardware import load_hardware
from simulator.simulate import cost, load_model, resolve_stack, run

PROMPT = 2048
LENGTHS = (1, 128, 1024, 4096, 8192, 32768)
PER_ITERATION_UP_TO = 1024  # the step-by-step path takes seconds beyond this


def timed(fn, repeats):
    """Best of `repeats`: the machine is shared, and other work only ever adds time."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main():
    hw = load_hardware("a100")
    # other work on the machine only ever adds time: the load says how much to trust the figures
    print(f"llama2-7b on a100, {PROMPT}-token prompt; best of 5-11, ms (load average {os.getloadavg()[0]:.1f})")
    print(f"{'output tokens':>13}  {'kernels':>7}  {'build+lower':>11}  {'cost':>6}  {'run()':>7}  "
          f"{'every step: kernels, run()':>27}  {'build+lower, step by step':>25}")
    closed = (FULL, ROOFLINE)
    for n in LENGTHS:
        params = {"prompt_tokens": PROMPT, "output_tokens": n}
        built = load_model("llama2-7b", params)
        stack = resolve_stack(None, built, hw)
        table = mapping.lower(built, stack, hw.spec, closed_form=closed)
        repeats = 5 if n > 4096 else 11
        lower = timed(lambda: mapping.lower(load_model("llama2-7b", params), stack, hw.spec, closed_form=closed),
                      repeats)
        costing = timed(lambda: cost(built, table, hw, stack), repeats)
        whole = timed(lambda: run("llama2-7b", "a100", params), repeats)
        simulate.CLOSED_FORM = False
        steps = len(mapping.lower(built, stack, hw.spec))
        every = timed(lambda: run("llama2-7b", "a100", params), repeats)
        simulate.CLOSED_FORM = True
        old = ""
        if n <= PER_ITERATION_UP_TO:
            old = timed(lambda: mapping.lower(load_model("llama2-7b", params), stack, hw.spec, per_iteration=True), 3)
            old = f"{1e3 * old:.1f}"
        print(f"{n:>13,}  {len(table):>7,}  {1e3 * lower:>11.1f}  {1e3 * costing:>6.1f}  {1e3 * whole:>7.1f}  "
              f"{steps:>18,}  {1e3 * every:>7.1f}  {old:>25}")
    print(f"target: run() <= 10 ms at every length (load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
