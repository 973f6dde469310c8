"""Where does the time go, and what would Flash Attention, more bandwidth or fp8 buy?

    python examples/what_if.py [model] [hardware]
"""
import sys

from simulator import run


def main(model="sd15", hardware="h100"):
    base = run(model, hardware, attention="math")
    cases = {
        "Flash Attention": run(model, hardware, attention="flash"),
        "Flash + 2x bandwidth": run(model, hardware, attention="flash",
                                    hw_overrides={"memory.bandwidth": 2 * base.hardware.spec.memory.bandwidth}),
    }
    if "fp8" in base.hardware.spec.compute:  # Ampere and older have no fp8 matrix units
        cases["Flash + fp8"] = run(model, hardware, {"dtype": "fp8"}, attention="flash")
    print(f"{model} on {base.hardware.name}: {base.time_s:.3f} s with materialised attention")
    for name, r in cases.items():
        print(f"  {name:22s} {r.time_s:8.3f} s   {base.time_s / r.time_s:5.2f}x")
    print("time by category (flash):")
    flash = cases["Flash Attention"]
    for cat, v in flash.by_category().items():
        print(f"  {cat:12s} {100 * v['time_s'] / flash.time_s:5.1f} %")


if __name__ == "__main__":
    main(*sys.argv[1:])
