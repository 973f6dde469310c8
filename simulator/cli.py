"""`python -m simulator ...`: parse arguments, call the library, print or write. No logic of its own."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .errors import SpecError, shown, unknown

# Everything else (numpy, pydantic schemas, networkx, matplotlib) is imported inside the command that needs it,
# so `--help` and `list` start in a fraction of the time.


BUILTIN_CASES = "<built-in>"  # `validate --public` without a file: library.public_cases()


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        raise SpecError(f"{self.prog}: {message}")


def _pairs(items: list, flag: str, numeric: bool) -> dict:
    from .graph import parse_value
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise SpecError(f"{flag} {shown(item)}: expected NAME=VALUE")
        parsed = parse_value(value)
        if numeric and (isinstance(parsed, (str, bool))):
            raise SpecError(f"{flag} {shown(item)}: {shown(value)} is not a number")
        out[key.strip()] = parsed
    return out


def _counts(text: str, flag: str = "--devices") -> list:
    """`--devices 1,2,4,8` (or `--batches`) as positive whole numbers."""
    out = []
    for item in text.split(","):
        try:
            out.append(int(item))
        except ValueError:
            raise SpecError(f"{flag} {text}: '{item.strip()}' is not a whole number") from None
        if out[-1] < 1:
            raise SpecError(f"{flag} {text}: {out[-1]} is not a positive number")
    return out


def _emit(text: str, out: str | None) -> None:
    if out:
        from .writers import write_atomic
        write_atomic(out, text)
        print(f"wrote {out}", file=sys.stderr)
    else:
        print(text)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--set", action="append", metavar="NAME=VALUE", default=[],
                   help="override a workload parameter of the model (repeatable), e.g. --set height=1024")
    p.add_argument("--hw-set", action="append", metavar="FIELD=VALUE", default=[],
                   help="override a numeric hardware field (repeatable), e.g. --hw-set memory.bandwidth=5e12")
    p.add_argument("--attention", default="flash", help="attention implementation: flash (fused) or math "
                   "(materialises the score matrix)")
    p.add_argument("--roofline", action="store_true",
                   help="bare roofline: every efficiency term off")
    p.add_argument("--disable", default="", metavar="TERM[,TERM]",
                   # engine.Terms.NAMES, spelled out: the parser imports no numpy (tests/test_cli.py checks the list)
                   help="switch efficiency terms off: tile, wave, achievable, overhead, attention, latency, cache, "
                   "power, comm (comm: collectives free, an infinitely fast interconnect)")
    _stack_options(p)
    p.add_argument("--out", help="write to this file (atomically) instead of standard output")


def _stack_options(p: argparse.ArgumentParser, fusion: bool = True) -> None:
    p.add_argument("--stack", help="software stack: eager (default), compile, compile-cudagraphs, tensorrt, xla, "
                   "serving, or a stack YAML file; default: the model's, else the device's (xla on TPUs), else eager")
    if fusion:
        p.add_argument("--fusion", default=None, help="override the stack's fusion: none, elementwise (elementwise "
                       "ops and single-pass norms fold into their producers) or full (XLA-style, also softmax)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="simulator", description="Analytical performance simulator for text-to-image, "
                     "text-to-video and LLM inference on real or hypothetical accelerators.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("list", help="list built-in models, hardware or software stacks")
    p.add_argument("what", help="models, hardware or stacks")
    p.add_argument("--format", default="table", help="table or json (full records)")

    p = sub.add_parser("describe", help="a model's workload parameters (meaning, default, allowed values) and "
                       "stages; --graph exports its op graph")
    p.add_argument("model", help="built-in model id or path to a model YAML file")
    p.add_argument("--format", default="table", help="table or json")
    p.add_argument("--graph", metavar="FILE", help="write the op graph (default workload) to FILE: .graphml or .dot")

    p = sub.add_parser("import", help="write a model YAML from a diffusers / transformers config.json or a "
                       "Hugging Face repository folder (model_index.json + component folders); config fields only")
    p.add_argument("path", help="a config.json, or a folder with model_index.json (a pipeline) or config.json")
    p.add_argument("--out", required=True, help="the model YAML to write, e.g. models/my_model.yaml")

    p = sub.add_parser("run", help="cost one model on one device")
    p.add_argument("model", help="built-in model id or path to a model YAML file")
    p.add_argument("--hardware", default="a100", help="built-in hardware id or path to a YAML file (default a100)")
    p.add_argument("--format", default="table", help="table, csv or json")
    p.add_argument("--by", default="layer", help="table/csv grouping: layer, category, stage or op")
    p.add_argument("--devices", type=int, help="devices of this kind to run on (alone: tensor parallel over all)")
    p.add_argument("--parallel", metavar="PLAN", help="parallel plan, e.g. tp=2,pp=1,dp=1,sp=4,cfg=2,ep=1 "
                   "(omitted degrees are 1; their product is the device count; ring=N: ring attention)")
    _common(p)

    p = sub.add_parser("compare", help="one model on several devices, side by side")
    p.add_argument("model", help="built-in model id or path to a model YAML file")
    p.add_argument("--hardware", required=True, help="comma-separated hardware ids or files; the first is the "
                   "baseline for speed-ups")
    p.add_argument("--format", default="table", help="table or json")
    p.add_argument("--devices", metavar="N[,N]", help="compare device counts, e.g. 1,2,4,8 (tensor parallel "
                   "over each; with --parallel, tp fills the rest of each count)")
    p.add_argument("--parallel", metavar="PLAN", help="degrees for every device count, e.g. sp=2,cfg=2: tp fills "
                   "the rest of each --devices count (each a multiple of the degrees' product); with tp given, the "
                   "degrees must multiply to every count")
    _common(p)
    p = sub.add_parser("report", help="re-run a study's characterisation: report.md, figures, findings.json")
    p.add_argument("which", help="paper (Golden et al., ISPASS 2024)")
    p.add_argument("--hardware", default="a100", help="device (default a100)")
    p.add_argument("--hw-set", action="append", metavar="FIELD=VALUE", default=[],
                   help="override a numeric hardware field (repeatable)")
    p.add_argument("--roofline", action="store_true", help="bare roofline: every efficiency term off")
    p.add_argument("--stack", help="software stack (default: the study's, eager PyTorch)")
    p.add_argument("--out", default="report", help="output folder (default report/)")

    p = sub.add_parser("plot", help="one figure: roofline, breakdown, seqlen, scaling, temporal, serving")
    p.add_argument("kind", help="roofline | breakdown | seqlen | scaling | temporal | serving (throughput "
                   "per device against latency over --batches, one line per --devices count)")
    p.add_argument("models", help="model id(s), comma-separated")
    p.add_argument("--hardware", default="a100", help="device (default a100)")
    p.add_argument("--set", action="append", metavar="NAME=VALUE", default=[], help="workload override")
    p.add_argument("--hw-set", action="append", metavar="FIELD=VALUE", default=[], help="hardware override")
    p.add_argument("--attention", default="flash", help="flash or math (roofline, seqlen)")
    p.add_argument("--devices", metavar="N[,N]", help="devices of this kind (serving: one line per count, "
                   "default 1,2,4,8; other figures: one count)")
    p.add_argument("--parallel", metavar="PLAN", help="parallel plan, e.g. sp=2 (default: tensor parallel); "
                   "serving: tp fills the rest of each --devices count; other figures: the degrees multiply to "
                   "--devices")
    p.add_argument("--batches", metavar="B[,B]", default="1,2,4,8,16,32,64,128,256",
                   help="serving: the batch sizes swept (default 1,2,4,...,256)")
    _stack_options(p, fusion=False)
    p.add_argument("--out", required=True, help="figure file (.png, .svg or .pdf)")

    p = sub.add_parser("calibrate", help="measure kernels on the local GPU with torch (optional dependency)")
    p.add_argument("--out", required=True, help="CSV to write, e.g. measurements/h100.csv")
    p.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    p.add_argument("--quick", action=argparse.BooleanOptionalAction, default=None,
                   help="a few tiny cases (default on the CPU) or the full plan (default on a GPU)")
    p.add_argument("--repeats", type=int, help="timed calls per case (default 10 on a GPU, 5 on the CPU)")
    p.add_argument("--warmup", type=int, help="untimed calls first (default 3 on a GPU, 1 on the CPU)")

    p = sub.add_parser("fit", help="fit the efficiency parameters of a device to kernel measurements, or the few "
                       "named parameters without kernel data to the public end-to-end cases (--public)")
    p.add_argument("measurements", nargs="?", help="CSV from `calibrate`")
    p.add_argument("--hardware", help="the device measured (its file is the starting point)")
    p.add_argument("--out", help="hardware YAML to write (inherits the device, overrides efficiency)")
    p.add_argument("--public", nargs="?", const=BUILTIN_CASES, metavar="CASES.yaml",
                   help="fit the named parameters of fidelity.PUBLIC_PARAMETERS on the public cases; reports each "
                   "source's error with that source held out")
    p.add_argument("--points", type=int, default=4, help="--public: grid values per parameter (default 4)")
    p.add_argument("--only", metavar="PARAM[,PARAM]", help="fit only these parameters (e.g. "
                   "efficiency.kernel_fixed_s) and keep the others at the device file's values")

    p = sub.add_parser("validate", help="errors against held-out kernel measurements or published end-to-end runs")
    p.add_argument("measurements", nargs="?", help="CSV from `calibrate` (held-out rows are used)")
    p.add_argument("--hardware", help="device to predict with (a built-in id or a fitted YAML)")
    p.add_argument("--public", nargs="?", const=BUILTIN_CASES, metavar="CASES.yaml",
                   help="compare with published end-to-end measurements (default: the built-in "
                   "measurements/public.yaml, found from any directory)")
    p.add_argument("--stack", help="kernel rows: the stack that ran them (default eager); --public: every case "
                   "under this stack instead of its own")
    p.add_argument("--all-rows", action="store_true", help="kernel rows: every row, not only the held-out fifth")
    p.add_argument("--write", action="store_true", help="--public: also rewrite measurements/expected-error.json "
                   "(the trust table every result reports)")

    p = sub.add_parser("sweep", help="evaluate models over a grid or random sample of hardware design points")
    p.add_argument("models", help="comma-separated model ids or files")
    p.add_argument("--hardware", default="a100", help="base device whose fields are varied (default a100)")
    p.add_argument("--vary", action="append", default=[], metavar="FIELD=SPEC",
                   help="hardware field (same paths as --hw-set) over a list a,b,c or a range start:stop:num[:log]")
    p.add_argument("--vary-workload", action="append", default=[], metavar="NAME=SPEC",
                   help="workload parameter over a list or range (always a grid); also the quantisation and "
                   "memory-saving options every model takes, e.g. weight_dtype=int4,fp16 or offload=none,model")
    p.add_argument("--vary-plan", action="append", default=[], metavar="PLANS",
                   help="parallel plans separated by ';', e.g. \"tp=1;tp=2;tp=4;tp=8\" (each one kernel table, "
                   "like a workload; rows gain plan, devices and comm_s)")
    p.add_argument("--samples", type=int, help="draw N random design points (Latin hypercube) instead of a grid")
    p.add_argument("--seed", type=int, default=0, help="random seed for --samples (default 0)")
    p.add_argument("--max-points", type=int, default=10**7, help="refuse larger grids (default 10^7)")
    p.add_argument("--plot", help="figure file (.png/.svg): line, heatmap or Pareto front by number of fields")
    p.add_argument("--pareto-cost", help="cost field for the Pareto plot: a varied field or energy_j, the energy "
                                         "per inference (default tdp_w if varied)")
    p.add_argument("--executor", default="local", help="local or dask")
    p.add_argument("--scheduler", help="Dask scheduler address (tcp://host:8786); default: a local cluster")
    _common(p)

    p = sub.add_parser("explore", help="the simulator in a browser page: views, what-if sliders, compare, sweep "
                       "(optional extra: pip install -e \".[explore]\")")
    p.add_argument("--host", default="127.0.0.1", help="address to serve on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765)")
    return parser


FIGURES = (".png", ".svg", ".pdf")


def check_outputs(args) -> None:
    """Every output path of the command, checked before any work starts (a folder where a file is wanted, a
    path below a regular file, a place that cannot be written): one line and exit 2 instead of a traceback
    after minutes of work."""
    from .writers import FORMATS, check_output
    cmd = args.command
    if cmd == "report":
        check_output(args.out, "--out", folder=True)
    elif cmd == "plot":
        check_output(args.out, "--out", suffixes=FIGURES)
    elif cmd == "sweep":
        if args.out is not None:
            check_output(args.out, "--out", suffixes=tuple(FORMATS))
        if args.plot is not None:
            check_output(args.plot, "--plot", suffixes=FIGURES)
            if args.out and Path(args.plot).resolve() == Path(args.out).resolve():
                raise SpecError(f"--plot {shown(args.plot)}: the same file as --out")
    elif cmd == "import":
        check_output(args.out, "--out", suffixes=(".yaml", ".yml"))
    elif cmd == "describe" and getattr(args, "graph", None):
        check_output(args.graph, "--graph", suffixes=(".graphml", ".dot"))
    elif cmd in ("run", "compare", "calibrate", "fit") and args.out is not None:
        check_output(args.out, "--out")
    if cmd in ("plot", "report") or (cmd == "sweep" and args.plot):
        import importlib.util
        if importlib.util.find_spec("matplotlib") is None:
            flag = "--plot" if cmd == "sweep" else cmd
            raise SpecError(f"{flag}: figures need matplotlib (pip install matplotlib)")


def _choice(value: str, choices, flag: str) -> str:
    if value not in choices:
        raise SpecError(f"{flag}: {unknown('value', value, choices)} (choose from {', '.join(choices)})")
    return value


def _list(what: str, fmt: str) -> str:
    import json

    from . import catalog
    _choice(what, tuple(catalog.RECORDS), "list")
    fmt = _choice(fmt, ("table", "json"), "--format")
    records = catalog.RECORDS[what]()
    return json.dumps(records, indent=1) if fmt == "json" else catalog.TABLES[what](records)


def describe_command(args) -> int:
    import json

    from . import catalog
    fmt = _choice(args.format, ("table", "json"), "--format")
    if args.graph:
        from .export import write_graph
        write_graph(args.model, args.graph)
        print(f"wrote {args.graph}", file=sys.stderr)
        return 0
    record = catalog.describe(args.model)
    print(json.dumps(record, indent=1) if fmt == "json" else catalog.describe_text(record))
    return 0


class _Progress:
    """A progress bar on stderr, shown once the sweep has run for more than a second."""

    def __init__(self, total: int):
        self.total, self.start, self.shown, self.last = total, time.monotonic(), False, 0.0

    def update(self, done: int) -> None:
        now = time.monotonic()
        elapsed = now - self.start
        if elapsed < 1.0 or (now - self.last < 0.5 and done < self.total):
            return
        self.shown, self.last = True, now
        frac = done / self.total
        bar = "#" * int(30 * frac)
        eta = elapsed / frac - elapsed if frac else 0.0
        print(f"\r[{bar:<30s}] {100 * frac:5.1f}%  {done:,}/{self.total:,} points  {elapsed:.1f}s "
              f"(eta {eta:.1f}s)", end="", file=sys.stderr, flush=True)

    def finish(self) -> None:
        if self.shown:
            print(file=sys.stderr)


def sweep_command(args, overrides, hw_overrides, terms) -> int:
    """Plan (validate everything), then stream blocks to the output; Ctrl-C keeps a valid partial file."""
    from . import sweep as sw
    from .writers import abort, open_writer

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if args.pareto_cost is not None and not args.plot:
        raise SpecError("--pareto-cost chooses the cost axis of --plot's Pareto front; give --plot too")
    if args.plot:  # what the figure needs, known from the options alone: refused before the CSV is written
        fields = [v.partition("=")[0].strip() for v in args.vary]
        if not fields:
            raise SpecError("--plot needs at least one --vary field")
        if len(fields) == 2 and args.samples is not None:
            raise SpecError("--plot: a heatmap of two fields needs a grid: drop --samples or vary more fields "
                            "for a Pareto plot")
        if args.pareto_cost is not None and (len(fields) < 3 or args.pareto_cost not in fields + ["energy_j"]):
            raise SpecError(f"--pareto-cost {shown(args.pareto_cost)}: needs three or more --vary fields and "
                            f"one of them or energy_j (varied: {', '.join(fields)})")
    plan = sw.plan(models, args.hardware, args.vary, args.vary_workload, overrides, hw_overrides, args.attention,
                   terms, args.samples, args.seed, args.max_points, args.fusion, args.stack, args.vary_plan)
    varied = [a.path for a in plan.space.axes]
    workload = [c for c in plan.columns[2:] if c not in varied and c not in ("time_s", "plan", "devices")
                ][:len(args.vary_workload)]
    if args.plot:
        if not varied:
            raise SpecError("--plot needs at least one --vary field")
        if plan.total_points > 10**6:
            raise SpecError(f"--plot draws at most 10^6 points; this sweep has {plan.total_points:,}")
    for w in plan.warnings:
        print(f"warning: {w}", file=sys.stderr)
    writer = open_writer(args.out, plan.columns)
    blocks = sw.run_dask(plan, args.scheduler) if args.executor == "dask" else sw.run_local(plan)
    progress = _Progress(plan.total_points)
    kept, done = [], 0
    try:
        for rows, done in blocks:
            writer.write(rows)
            if args.plot:
                kept.append(rows)
            progress.update(done)
    except KeyboardInterrupt:
        writer.close()
        progress.finish()
        print(f"interrupted: {args.out} holds the first {writer.written:,} of {plan.total_points:,} points",
              file=sys.stderr)
        return 130
    except BaseException:  # an error, not Ctrl-C: leave no partial file
        abort(writer, args.out)
        progress.finish()
        raise
    writer.close()
    progress.finish()
    if args.plot:
        try:
            from .plots import plot_sweep
            rows = sw.concat(kept, plan.columns)
            written = plot_sweep(rows, varied, workload, args.plot, args.pareto_cost)
        except BaseException:  # the command fails as a whole: no table without its figure
            Path(args.out).unlink(missing_ok=True)
            raise
    print(f"wrote {args.out}: {plan.total_points:,} points", file=sys.stderr)
    for path in written if args.plot else ():
        print(f"wrote {path}", file=sys.stderr)
    return 0


def report_command(args, hw_overrides) -> int:
    from . import paper, report
    from .engine import ROOFLINE, Terms
    from .hardware import load_hardware
    _choice(args.which, ("paper",), "report")
    load_hardware(args.hardware, hw_overrides)  # fail fast on a bad device before minutes of work
    print(f"characterising {sum(len(v) for v in paper.STUDY_MODELS.values())} models on {args.hardware} ...",
          file=sys.stderr)
    ch = paper.characterise(args.hardware, hw_overrides, ROOFLINE if args.roofline else Terms(),
                            stack=args.stack or paper.STUDY_STACK)
    out = paper.write_report(ch, args.out)
    def clip(text, width=48):
        return text if len(text) <= width else text[:width - 1] + "…"
    rows = [[f["id"], clip(paper.fmt_value(f["study_value"])), clip(paper.fmt_value(f["simulated_value"])),
             "yes" if f["holds"] else "NO"] for f in out["findings"]]
    print(report.text_table(["finding", "study", "simulated", "holds"], rows, "lllr"))
    print(f"\nwrote {out['report']}, {out['findings_json']} (full values and explanations) and "
          f"{sum(len(v) for v in out['figures'].values())} figure files in {args.out}")
    return 0


def plot_command(args, overrides, hw_overrides) -> int:
    """One figure of the report for chosen models, e.g. `plot roofline sd15 --hardware h100 --out r.png`."""
    from . import metrics, paper, plots, simulate
    kind = _choice(args.kind, ("roofline", "breakdown", "seqlen", "scaling", "temporal", "serving"), "plot")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models:
        raise SpecError("plot: give at least one model")
    if kind == "serving":
        if len(models) != 1:
            raise SpecError("plot serving: give one model")
        counts = _counts(args.devices or "1,2,4,8")
        batches = _counts(args.batches, "--batches")
        points = simulate.serving_curve(models[0], args.hardware, counts, batches, overrides, hw_overrides,
                                        args.attention, stack=args.stack, parallel=args.parallel)
        fig = plots.figure_serving(points, f"{models[0]} on {args.hardware}: batch sweep")
        for path in plots.save(fig, args.out):
            print(f"wrote {path}", file=sys.stderr)
        return 0
    devices = _counts(args.devices) if args.devices else None
    if devices is not None and len(devices) > 1:
        raise SpecError(f"--devices {args.devices}: plot {kind} draws one device count (plot serving draws several)")

    def run(m, hardware, overrides, hw_overrides, attention="flash"):
        return simulate.run(m, hardware, overrides, hw_overrides, attention, stack=args.stack,
                            devices=devices[0] if devices else None, parallel=args.parallel)

    runs = {m: run(m, args.hardware, overrides, hw_overrides, args.attention) for m in models}
    families = {m: r.model.family for m, r in runs.items()}
    if kind == "roofline":
        stars = [(r, s.name) for r in runs.values() for s in r.model.stages
                 if r.model.family == "llm" and s.name in ("prefill", "decode")]
        fig = plots.figure_roofline(list(runs.values()), families, stars)
    elif kind == "breakdown":
        pairs = [(m, run(m, args.hardware, overrides, hw_overrides, "math"),
                  run(m, args.hardware, overrides, hw_overrides, "flash")) for m in models]
        fig = plots.figure_breakdown(pairs, families)
    elif kind == "seqlen":
        fig = plots.figure_seqlen([(f"{m} {s.name}", paper.attention_layers(r, s.name))
                                   for m, r in runs.items() for s in r.model.stages
                                   if paper.attention_layers(r, s.name)])
    elif kind == "scaling":
        sides = list(paper.SCALING_SIDES)
        series = {a: [run(models[0], args.hardware, {**overrides, "height": s, "width": s}, hw_overrides, a)
                      for s in sides] for a in ("flash", "math")}
        fig = plots.figure_scaling(sides, series["flash"], series["math"])
    else:
        splits = {m: metrics.role_split(r) for m, r in runs.items()}
        for m, s in splits.items():
            if "temporal" not in s or "spatial" not in s:
                raise SpecError(f"plot temporal: {m} has no attention ops with role spatial and temporal")
        frames = {m: [(n, metrics.role_split(run(m, args.hardware, {**overrides, "frames": n}, hw_overrides)))
                      for n in paper.FRAME_COUNTS] for m in models}
        fig = plots.figure_temporal(splits, frames)
    for path in plots.save(fig, args.out):
        print(f"wrote {path}", file=sys.stderr)
    return 0


def fidelity_command(args) -> int:
    from . import fidelity, report
    from .writers import write_atomic
    if args.command == "calibrate":
        from . import calibrate
        return calibrate.main(args.out, args.device, args.quick, args.repeats, args.warmup)
    if args.command == "fit" and args.public:
        if args.only is not None:
            raise SpecError("--only: chooses among a device's kernel-fit parameters; fit --public fits "
                            f"{', '.join(fidelity.PUBLIC_PARAMETERS)}")
        from .library import public_cases
        import numpy as np
        grid = {k: np.linspace(lo, hi, max(args.points, 2)) for k, (lo, hi) in fidelity.PUBLIC_PARAMETERS.items()}
        result = fidelity.fit_public(public_cases() if args.public == BUILTIN_CASES else args.public, grid)
        rows = [[p, f"{v:.4g}", "at bound" if p in result["at_bound"] else ""]
                for p, v in result["parameters"].items()]
        print(report.text_table(["parameter", "fitted", ""], rows, "lrl"))
        print(f"median absolute error {result['median_abs_pct']:.0f} % in-sample, "
              f"{result['held_out_median_abs_pct']:.0f} % with each source held out of the fit")
        return 0
    if args.command == "fit":
        if not args.measurements or not args.hardware or not args.out:
            raise SpecError("fit needs a measurements CSV, --hardware and --out (or --public)")
        from .measurements import read_csv
        only = None
        if args.only is not None:
            only = tuple(p.strip() for p in args.only.split(",") if p.strip())
            if not only:
                raise SpecError(f"--only {args.only!r}: name at least one parameter (e.g. efficiency.kernel_fixed_s)")
        result = fidelity.fit(read_csv(args.measurements), args.hardware, only=only)
        created = time.strftime("%Y-%m-%d", time.gmtime())
        write_atomic(args.out, fidelity.fitted_yaml(result, args.measurements, created))
        rows = [[p, f"{v:.4g}"] for p, v in result["parameters"].items()]
        print(report.text_table(["parameter", "fitted"], rows, "lr"))
        print(f"training rows {result['train_rows']}; mean squared log error {result['loss_before']:.4f} -> "
              f"{result['loss_after']:.4f}; wrote {args.out}")
        return 0
    if args.public:
        from .library import public_cases
        found = fidelity.validate_public(public_cases() if args.public == BUILTIN_CASES else args.public)
        print(fidelity.public_table(found))
        if args.write:
            import json
            from .library import data_dir
            from .trust import FILE, summarise
            path = data_dir("measurements") / FILE
            write_atomic(str(path), json.dumps(summarise(found), indent=1, sort_keys=True) + "\n")
            print(f"wrote {path}", file=sys.stderr)
        return 0
    if not args.measurements:
        raise SpecError("validate needs a measurements CSV (or --public)")
    from .measurements import read_csv
    result = fidelity.validate(read_csv(args.measurements), args.hardware, held_only=not args.all_rows,
                               stack=args.stack or "eager")
    rows = []
    for cat in result["roofline"]:
        r, m = result["roofline"][cat], result["model"][cat]
        rows.append([cat, r["rows"], f"{r['median_ape']:.1f}", f"{r['p90_ape']:.1f}", f"{m['median_ape']:.1f}",
                     f"{m['p90_ape']:.1f}"])
    which = "all rows" if args.all_rows else "held-out rows (never used by `fit`)"
    print(f"absolute percentage error on {which}; devices: {', '.join(result['devices'])}")
    print(report.text_table(["category", "rows", "roofline median", "roofline p90", "model median", "model p90"],
                             rows, "lrrrrr"))
    return 0


def explore_command(args) -> int:
    import importlib.util
    missing = [m for m in ("starlette", "uvicorn", "plotly") if importlib.util.find_spec(m) is None]
    if missing:
        print(f"explore needs {', '.join(missing)}: pip install -e \".[explore]\"", file=sys.stderr)
        return 2
    if not 0 < args.port < 65536:
        raise SpecError(f"--port {args.port}: expected 1 to 65535")
    from .explore.server import serve  # the web stack loads only here: `--help` stays fast
    return serve(args.host, args.port)


def main(argv: list | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        check_outputs(args)
        if args.command == "list":
            print(_list(args.what, args.format))
            return 0
        if args.command == "describe":
            return describe_command(args)
        if args.command == "import":
            from .importer import import_to_file
            done = import_to_file(args.path, args.out)
            print(f"wrote {done['out']}: {done['name']}, stages {', '.join(done['stages'])}, "
                  f"{done['params']:,} parameters", file=sys.stderr)
            return 0
        if args.command in ("calibrate", "fit", "validate"):
            return fidelity_command(args)
        if args.command == "explore":
            return explore_command(args)
        from . import report
        from .engine import ROOFLINE, Terms
        from .graph import ATTENTION_MODES
        from .stacks import FUSIONS, load_stack
        from .metrics import GROUPINGS
        from .simulate import compare, run
        hw_overrides = _pairs(args.hw_set, "--hw-set", numeric=True)
        if args.command == "report":
            return report_command(args, hw_overrides)
        overrides = _pairs(args.set, "--set", numeric=False)
        _choice(args.attention, ATTENTION_MODES, "--attention")
        if args.command == "plot":
            return plot_command(args, overrides, hw_overrides)
        disabled = [t.strip() for t in args.disable.split(",") if t.strip()]
        for t in disabled:
            _choice(t, Terms.NAMES, "--disable")
        terms = ROOFLINE if args.roofline else Terms.without(disabled)
        if args.fusion is not None:
            _choice(args.fusion, FUSIONS, "--fusion")
        if args.stack is not None:
            load_stack(args.stack)  # a bad stack fails before any work
        if args.command == "run":
            fmt = _choice(args.format, ("table", "csv", "json"), "--format")
            by = _choice(args.by, GROUPINGS, "--by")
            result = run(args.model, args.hardware, overrides, hw_overrides, args.attention, terms, args.fusion,
                         args.stack, devices=args.devices, parallel=args.parallel)
            for w in result.warnings:
                print(f"warning: {w}", file=sys.stderr)
            text = {"table": lambda: report.table(result, by), "csv": lambda: report.to_csv(result, by),
                    "json": lambda: report.to_json(result)}[fmt]()
            _emit(text, args.out)
        elif args.command == "sweep":
            _choice(args.executor, ("local", "dask"), "--executor")
            if not args.out:
                raise SpecError("sweep needs --out FILE (.csv, .json or .parquet)")
            return sweep_command(args, overrides, hw_overrides, terms)
        elif args.command == "compare":
            fmt = _choice(args.format, ("table", "json"), "--format")
            names = [h.strip() for h in args.hardware.split(",") if h.strip()]
            if not names:
                raise SpecError("--hardware: give at least one device")
            counts = _counts(args.devices) if args.devices else None
            results = compare(args.model, names, overrides, hw_overrides, args.attention, terms, args.fusion,
                              args.stack, devices=counts, parallel=args.parallel)
            for w in dict.fromkeys(w for r in results for w in r.warnings):  # once each, as `run` prints them
                print(f"warning: {w}", file=sys.stderr)
            table = report.devices_table if counts or args.parallel else report.compare_table
            _emit(table(results) if fmt == "table" else report.compare_json(results), args.out)
        return 0
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
