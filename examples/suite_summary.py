"""One line per built-in model: end-to-end time on A100 and H100 and the operator category that dominates.

    python examples/suite_summary.py
"""
from simulator import compare
from simulator.library import builtin_ids


def main():
    print(f"{'model':16s} {'family':16s} {'A100':>10s} {'H100':>10s}  top category on H100")
    for model_id in builtin_ids("models"):
        a100, h100 = compare(model_id, ["a100", "h100"])
        cats = h100.by_category()
        top = max(cats, key=lambda c: cats[c]["time_s"])
        share = cats[top]["time_s"] / h100.time_s
        print(f"{model_id:16s} {a100.model.family:16s} {a100.time_s:9.3f}s {h100.time_s:9.3f}s  "
              f"{top} ({100 * share:.0f} %)")


if __name__ == "__main__":
    main()
