"""Speed of the core path on this machine: load + expand sd15, and one evaluation of it.

Targets (issue: simulator core): load+expand <= 200 ms, one evaluation <= 5 ms after load. Prints the
figures; it is a benchmark, not a timed test. Run: python bench/bench_engine.py
"""
import statistics
import time

from simulator.engine import FULL, evaluate, hardware_columns
from simulator.hardware import load_hardware
from simulator.mapping import lower
from simulator.simulate import load_model, resolve_stack


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    load = timed(lambda: load_model("sd15"), 10)
    model = load_model("sd15")
    hw = load_hardware("a100")
    stack = resolve_stack(None, model, hw)  # the model's default stack (eager for diffusers pipelines)
    lower_t = timed(lambda: lower(model, stack, hw.spec), 10)
    table = lower(model, stack, hw.spec)
    cols = hardware_columns(table, [hw.spec])
    one = timed(lambda: evaluate(table, cols, FULL), 200)
    print(f"sd15: {sum(len(s.ops) for s in model.stages)} ops, {len(table)} kernels")
    print(f"load + expand : {1e3 * load:7.1f} ms   (target <= 200 ms)")
    print(f"lower         : {1e3 * lower_t:7.1f} ms")
    print(f"evaluate once : {1e3 * one:7.2f} ms   (target <= 5 ms)")
    llama = timed(lambda: lower(load_model("llama2-7b", {"output_tokens": 1024}), stack, hw.spec), 3)
    print(f"llama2-7b, 1024 output tokens, load + expand + lower: {1e3 * llama:.0f} ms")


if __name__ == "__main__":
    main()
