"""Design-space sweeps: many hardware design points (and workloads) through the same vectorised engine.

The design space is a grid (cartesian product of `--vary` axes) or `samples` random points (Latin hypercube,
log-uniform on `:log` ranges). Workload axes (`--vary-workload`) are always a grid: each distinct workload is
one model build, and every hardware point is evaluated against it in blocks of `chunk` points, so memory stays
bounded for 10^7 points and rows stream to the output as they are computed.

Parallel plans (`--vary-plan "tp=1;tp=2;tp=4"`) are swept like workloads: each plan is one kernel table (one
device's share of the kernels plus the collectives), evaluated against every hardware point; the rows carry the
plan, the device count, the collectives' time (`comm_s`, metrics.comm_seconds) and the memory per device.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np

from . import memory_saving
from .engine import BOUNDS, FULL, KernelTable, Terms, energy_total, evaluate, host_excess, resident_bytes
from .mapping import compact, lower
from .memory_saving import HostWork
from .errors import SpecError, closest, shown
from .graph import parse_value
from .hardware import columns_from, field_paths, load_hardware, settable_paths
from .metrics import comm_seconds, energy_on_devices, group_matrix, items, items_per_second, per_joule
from .ops import CATEGORIES, UNITS
from .params import declared_params, workload_options
from .simulate import load_model, mean_times, resolve_stack

DEFAULT_MAX_POINTS = 10**7
DEFAULT_CHUNK_ELEMENTS = 1 << 17  # design points x kernels evaluated at once: 1 MB arrays stay in cache


@dataclass(frozen=True)
class Axis:
    path: str
    values: tuple = ()                  # an explicit list
    start: float | None = None          # or a range
    stop: float | None = None
    num: int = 0
    log: bool = False
    text: bool = False                  # a list with names or on/off values (dtypes, offload): workloads only

    @property
    def size(self) -> int:
        return len(self.values) if self.values else self.num

    def levels(self) -> list:
        """A workload axis's values in order: a list as given (numbers, names, on/off), a range's grid points."""
        if self.text:
            return list(self.values)
        return [int(v) if float(v).is_integer() else float(v) for v in self.grid()]

    def grid(self) -> np.ndarray:
        if self.values:
            return np.array(self.values, dtype=np.float64)
        if self.log:
            return np.geomspace(self.start, self.stop, self.num)
        return np.linspace(self.start, self.stop, self.num)

    def sample(self, u: np.ndarray) -> np.ndarray:
        """Map uniform [0, 1) draws onto the axis (log-uniform for log ranges, a choice for lists)."""
        if self.values:
            return np.array(self.values, dtype=np.float64)[np.minimum((u * len(self.values)).astype(int),
                                                                      len(self.values) - 1)]
        if self.log:
            return np.exp(np.log(self.start) + u * (np.log(self.stop) - np.log(self.start)))
        return self.start + u * (self.stop - self.start)


def parse_axis(text: str, flag: str) -> Axis:
    """`path=a,b,c` or `path=start:stop:num[:log]`. A workload list may also name values (`weight_dtype=int8,fp16`,
    `vae_tiling=false,true`): the parameter's own declaration checks them (plan)."""
    path, sep, spec = text.partition("=")
    path = path.strip()
    if not sep or not path or not spec:
        raise SpecError(f"{flag} {text}: expected FIELD=a,b,c or FIELD=start:stop:num[:log]")

    def number(s):
        v = parse_value(s.strip())
        if isinstance(v, (bool, str)):
            raise SpecError(f"{flag} {text}: '{s}' is not a number")
        if not math.isfinite(v):
            raise SpecError(f"{flag} {shown(text)}: values must be finite numbers, got {s.strip()}")
        if v < 0:
            raise SpecError(f"{flag} {shown(text)}: values must not be negative, got {s}")
        return v

    if ":" in spec:
        parts = spec.split(":")
        log = parts[-1].strip() == "log"
        if log:
            parts = parts[:-1]
        if len(parts) != 3:
            raise SpecError(f"{flag} {text}: a range is start:stop:num or start:stop:num:log")
        start, stop = number(parts[0]), number(parts[1])
        num = number(parts[2])
        if not isinstance(num, int) or num < 1:
            raise SpecError(f"{flag} {text}: the number of points must be a whole number of at least 1")
        if stop < start:
            raise SpecError(f"{flag} {text}: empty range (stop {stop} is below start {start})")
        if log and start <= 0:
            raise SpecError(f"{flag} {text}: a log range needs a positive start")
        return Axis(path, start=float(start), stop=float(stop), num=num, log=log)
    items = [v for v in spec.split(",") if v.strip()]
    if not items:
        raise SpecError(f"{flag} {text}: empty list of values")
    raw = [parse_value(v.strip()) for v in items]
    if flag == "--vary-workload" and any(isinstance(v, (bool, str)) for v in raw):
        return Axis(path, values=tuple(raw), text=True)
    return Axis(path, values=tuple(number(v) for v in items))


@dataclass
class DesignSpace:
    axes: list                 # hardware axes
    samples: int | None = None
    seed: int = 0

    @property
    def size(self) -> int:
        if self.samples is not None:
            return self.samples
        return math.prod(a.size for a in self.axes) if self.axes else 1

    def points(self, start: int, stop: int) -> dict:
        """Values of every axis for design points [start, stop), without building the whole space."""
        if not self.axes:
            return {}
        idx = np.arange(start, stop)
        if self.samples is not None:
            # Latin hypercube: each axis visits its `samples` strata once, in an order given by a random affine
            # permutation (stratum = a*i + b mod N, a coprime with N), with a random offset inside the stratum.
            # Computed block by block, so 10^7 samples need no 10^7-long arrays.
            n = self.samples
            rng = np.random.default_rng(self.seed)
            out = {}
            for k, axis in enumerate(self.axes):
                a = int(rng.integers(1, max(n, 2)))
                while math.gcd(a, n) != 1:
                    a = a % n + 1
                b = int(rng.integers(0, n))
                strata = (a * idx + b) % n
                jitter = np.random.default_rng([self.seed, k, start]).random(len(idx))
                out[axis.path] = axis.sample((strata + jitter) / n)
            return out
        grids = [a.grid() for a in self.axes]
        sizes = [len(g) for g in grids]
        out = {}
        for axis, g, pos in zip(self.axes, grids, np.unravel_index(idx, sizes)):
            out[axis.path] = g[pos]
        return out


@dataclass
class Job:
    """One model at one workload: what evaluating a block of design points needs (small, picklable)."""
    model: str
    workload: dict
    family: str
    params: dict               # the model's resolved workload parameters (batch, output_tokens, ...)
    stages: list
    peak_memory_bytes: float
    spec: object               # base HardwareSpec
    peaks: list
    table: KernelTable
    by_stage: np.ndarray       # [kernels, stages] counts
    by_category: np.ndarray    # [kernels, categories] counts
    terms: Terms = FULL
    stack: str = ""            # the software stack the kernel table was lowered for
    plan: str = ""             # the parallel plan (parallel.Plan as text) where plans are swept
    devices: int = 1
    resident: float | None = None  # re-read bytes the file's own L2 serves (None: the table keeps its re-reads)
    host_work: HostWork | None = None  # weight copies and CPU stages of the memory-saving modes (None: none)
    pipeline: int = 1          # the plan's pp: its table holds every layer once (metrics.energy_on_devices)
    # where the table keeps the re-reads (L2 varied or moved), the host model's kernels (simulate.host_kernels):
    # the table's kernels merged without them, and each table row's kernel there; None: the table itself
    host_table: KernelTable | None = None
    host_group: np.ndarray | None = None

    @property
    def item(self) -> str:
        """What one inference delivers: images, videos or tokens (the throughput columns are named after it)."""
        return items(self.family, self.params)[0]


def _job(model_id: str, workload: dict, overrides: dict, hw, attention: str, terms: Terms,
         fusion: str | None = None, stack: str | None = None, plan=None, l2_varied: bool = True) -> Job:
    built = load_model(model_id, {**overrides, **workload}, attention)
    spec = hw.spec
    st = resolve_stack(stack, built, hw, fusion)
    full = lower(built, st, spec, plan=plan)
    work = memory_saving.host_work(built, full)
    memory_saving.host_seconds(work, spec)   # a mode the device cannot run is refused before any point
    # stages on the host CPU take no device time or energy (as in `run`); their time is the host's
    full.count = np.where(np.isin(full.stage, work.cpu_stages), 0.0, full.count)
    # an L2 set away from the file's (--hw-set) costs its re-reads at every point, as a varied one does
    l2_varied = l2_varied or (spec.on_chip.l2_bytes, spec.on_chip.l2_bandwidth) != (
        spec.reference("l2_bytes"), spec.reference("l2_bandwidth"))
    resident = None
    if not l2_varied:  # the L2 term is zero at every point: only the energy its hits save remains, one number
        resident = float(resident_bytes(full, [spec.on_chip.l2_bytes])[0] @ full.count) \
            if full.reread is not None else 0.0
    table = compact(full, reuse=l2_varied)
    host_table, _, host_group = compact(table, rows=True, reuse=False, groups=True) if l2_varied else (None,) * 3
    sharding = table.sharding
    # per device on several devices (weights, KV cache and activations split by the plan)
    peak = sharding.peak_memory_bytes if sharding is not None else built.peak_memory_bytes
    return Job(built.id, workload, built.family, dict(built.params), [s.name for s in built.stages],
               peak, spec, table.peaks, table,
               group_matrix(table.stage, len(built.stages), table.count),
               # one more column for the collectives of a multi-device plan (category `comm`)
               group_matrix(table.category, len(CATEGORIES) + 1, table.count), terms, st.id,
               str(plan) if plan is not None else "", plan.devices if plan is not None else 1, resident,
               work if work.moved.any() or work.cpu_stages else None, plan.pp if plan is not None else 1,
               host_table, host_group)


def evaluate_block(job: Job, varied: dict) -> dict:
    """Rows (as columns) for one block of design points of one job. Used by every executor."""
    n = len(next(iter(varied.values()))) if varied else 1
    cols = columns_from(job.spec, job.peaks, varied, n, job.table.effs)
    c = evaluate(job.table, cols, job.terms, parts=False, energy=False)
    time = c["time"]
    if job.host_table is None:  # [points, stages]
        host = host_excess(job.table, time, job.terms)
    else:
        host = host_excess(job.host_table, mean_times(time, job.host_group, job.table.count, job.host_table.count),
                           job.terms)
    if job.host_work is not None:   # weight copies over the host link and stages on the host CPU (run's terms)
        host[:, list(job.host_work.cpu_stages)] = 0.0
        transfer, cpu = memory_saving.host_seconds(job.host_work, job.spec, varied)
        host = host + transfer + cpu
    device = time @ job.table.count
    total = device + host.sum(axis=1)
    rows = {"model": np.full(n, job.model, dtype=object), "stack": np.full(n, job.stack, dtype=object)}
    if job.plan:
        rows["plan"], rows["devices"] = np.full(n, job.plan, dtype=object), np.full(n, job.devices)
    for k, v in job.workload.items():
        rows[k] = np.full(n, v)
    for k, v in varied.items():
        rows[k] = np.asarray(v)
    rows["time_s"] = total
    # one matrix-vector product per group: BLAS gemv is far faster here than a skinny gemm
    for i, name in enumerate(job.stages):
        rows[f"stage_{name}_s"] = time @ np.ascontiguousarray(job.by_stage[:, i]) + host[:, i]
    for i, name in enumerate(CATEGORIES):
        rows[f"{name}_s"] = time @ np.ascontiguousarray(job.by_category[:, i])
    if job.plan:
        rows["comm_s"] = comm_seconds(time, job.table)
    # time in memory- and overhead-bound kernels; compute-bound is the rest
    # (and in collectives, on several devices)
    bounds = BOUNDS if (job.table.unit == UNITS.index("comm")).any() else BOUNDS[:3]
    parts = {b: np.where(c["bound"] == b, time, 0.0) @ job.table.count for b in range(1, len(bounds))}
    parts[2] = parts[2] + host.sum(axis=1)  # time the host adds (and its link and CPU) counts as overhead-bound
    parts[0] = total - sum(parts[b] for b in range(1, len(bounds)))
    for b, name in enumerate(bounds):
        rows[f"{name}_bound_share"] = parts[b] / total
    rows["peak_memory_bytes"] = np.full(n, float(job.peak_memory_bytes))
    rows["fits"] = job.peak_memory_bytes <= cols["capacity"]
    rows[f"{job.item}_per_s"] = items_per_second(job.family, job.params, total)
    if job.plan:
        rows[f"{job.item}_per_s_per_device"] = rows[f"{job.item}_per_s"] / job.devices
    if job.spec.power is not None:  # the kernels' dynamic energy (no static time) once per device share of the
        # table, and every device's static power over the whole time; the average power is each device's
        dynamic = energy_total(job.table, cols, 0.0, job.terms, job.resident)
        energy = energy_on_devices(dynamic, cols["static_w"], total, job.devices, job.pipeline)
        rows["energy_j"], rows["avg_power_w"] = energy, energy / job.devices / total
        rows[f"{job.item}_per_j"] = per_joule(items(job.family, job.params)[1], energy)
    return rows


@dataclass
class Sweep:
    jobs: list
    space: DesignSpace
    chunk: int
    columns: list = field(default_factory=list)
    warnings: list = field(default_factory=list)

    @property
    def total_points(self) -> int:
        return len(self.jobs) * self.space.size

    def blocks(self):
        """(job, start, stop) for every block, in output order."""
        for job in self.jobs:
            for start in range(0, self.space.size, self.chunk):
                yield job, start, min(start + self.chunk, self.space.size)


def plan(models: list[str], hardware: str, vary: list[str], vary_workload: list[str], overrides: dict | None = None,
         hw_overrides: dict | None = None, attention: str = "flash", terms: Terms = FULL,
         samples: int | None = None, seed: int = 0, max_points: int = DEFAULT_MAX_POINTS,
         fusion: str | None = None, stack: str | None = None, vary_plan: list[str] | None = None) -> Sweep:
    """Validate everything and build the models; nothing is evaluated or written yet. `vary_plan`: parallel
    plans (`tp=2,sp=4`; a text may hold several separated by `;`), each one kernel table like a workload."""
    if not models:
        raise SpecError("sweep: give at least one model")
    if max_points < 1:
        raise SpecError("--max-points must be at least 1")
    if samples is not None and not 1 <= samples <= max_points:
        raise SpecError(f"--samples must be between 1 and --max-points ({max_points:,}), got {samples:,}")
    base = load_hardware(hardware, hw_overrides)
    allowed = settable_paths(field_paths(base.spec.model_dump())) | {"tdp_w"}
    axes = [parse_axis(v, "--vary") for v in vary]
    for axis in axes:
        if axis.path not in allowed:
            raise SpecError(f"--vary {axis.path}: unknown hardware field{closest(axis.path, allowed)}")
    if len({a.path for a in axes}) != len(axes):
        raise SpecError("--vary: a field is varied twice")
    space = DesignSpace(axes, samples, seed)
    plans = parse_plans(vary_plan, base)
    w_axes = [parse_axis(v, "--vary-workload") for v in vary_workload]
    if len({a.path for a in w_axes}) != len(w_axes):
        raise SpecError("--vary-workload: a parameter is varied twice")
    # the size from the axes' lengths alone, before any grid is built (a range's num may be 10^30)
    total = len(models) * math.prod(a.size for a in w_axes) * space.size * max(len(plans), 1)
    if total > max_points:
        raise SpecError(f"the {'sweep' if samples else 'grid'} has {total:,} points, more than --max-points "
                        f"{max_points:,}; " + ("draw fewer --samples, vary fewer workloads, plans or models, or raise "
                                               "--max-points" if samples else
                                               "use --samples N for a random subset or raise --max-points"))
    for axis in axes:  # the schema's bounds (positive rates, efficiencies <= 1, ...) at both ends of each axis
        ends = (min(axis.values), max(axis.values)) if axis.values else (axis.start, axis.stop)
        for value in ends:
            try:
                load_hardware(hardware, {**(hw_overrides or {}), axis.path: float(value)})
            except SpecError as exc:
                raise SpecError(f"--vary {axis.path}={value:g}: "
                                f"{exc.message.partition(': ')[2] if exc.message.startswith('--hw-set') else exc}") \
                    from None
    workloads = []
    for combo in itertools.product(*[a.levels() for a in w_axes]):
        workloads.append(dict(zip([a.path for a in w_axes], combo)))
    # --set and --vary-workload apply to the models that declare the parameter, and to the options every model
    # takes (quantisation, memory saving; a model's own declaration of one wins); a name none has is an error
    declared = {m: workload_options() | declared_params(m) for m in models}  # name -> Param, read once per model
    for name in list(overrides or {}) + [a.path for a in w_axes]:
        if not any(name in d for d in declared.values()):
            known = sorted({k for d in declared.values() for k in d})
            raise SpecError(f"--set/--vary-workload {name}: no model in this sweep has that workload parameter"
                            f"{closest(name, known)}")
    for axis in w_axes:  # names in a list of a numeric parameter: the list's own error, before any range check
        word = next((v for v in axis.values if isinstance(v, (bool, str))), None) if axis.text else None
        if word is not None and any(d[axis.path].type not in ("str", "bool") for d in declared.values()
                                    if axis.path in d):
            raise SpecError(f"--vary-workload {axis.path}={','.join(map(str, axis.values))}: "
                            f"'{str(word).lower() if isinstance(word, bool) else word}' is not a number")
    for m in models:  # each value against the parameter's declared type and range, naming the option
        params = declared[m]
        for name, value in (overrides or {}).items():
            if name in params:
                params[name].check(value, "--set")
        for w in workloads:
            for name, value in w.items():
                if name in params:
                    params[name].check(value, "--vary-workload")
    jobs = []
    for m in models:
        mine = {k: v for k, v in (overrides or {}).items() if k in declared[m]}
        for w in dict.fromkeys(tuple((k, v) for k, v in w.items() if k in declared[m]) for w in workloads):
            for p in plans or [None]:
                jobs.append(_job(m, dict(w), mine, base, attention, terms, fusion, stack, p,
                                 l2_varied=any(a.path.startswith("on_chip.l2_") for a in axes)))
    kernels = max(len(j.table) for j in jobs)
    chunk = max(1, DEFAULT_CHUNK_ELEMENTS // max(kernels, 1))
    sweep = Sweep(jobs, space, chunk)
    from .fields import ignored, unread
    sweep.warnings += [f"hardware {base.id}: {w}" for w in unread(base.spec)]
    for axis in axes:  # a varied field no model of the sweep reads: the first model's reason
        if axis.path.startswith(("interconnect", "network")) and any(j.devices > 1 for j in jobs):
            continue  # the links' fields are read by the collectives of the multi-device plans
        said = [ignored(j.spec, j.peaks, j.table.effs, [axis.path], "--vary") for j in jobs]
        if all(said):
            sweep.warnings.append(said[0][0])
    columns = ["model", "stack"] + (["plan", "devices"] if plans else []) + [a.path for a in w_axes] + \
        [a.path for a in axes] + ["time_s"]
    for job in jobs:
        columns += [f"stage_{s}_s" for s in job.stages if f"stage_{s}_s" not in columns]
    columns += [f"{c}_s" for c in CATEGORIES] + (["comm_s"] if plans else []) + \
        [f"{b}_bound_share" for b in BOUNDS]
    columns += ["peak_memory_bytes", "fits"]
    for job in jobs:
        item = job.item
        extra = [f"{item}_per_s"] + ([f"{item}_per_s_per_device"] if plans else []) + \
            (["energy_j", "avg_power_w", f"{item}_per_j"] if job.spec.power else [])
        columns += [c for c in extra if c not in columns]
    sweep.columns = columns
    return sweep


def parse_plans(texts: list[str] | None, hw) -> list:
    """`--vary-plan` texts (each one or more plans separated by `;`) as Plans, each checked against the device's
    links; [] when none is given."""
    from .parallel import check_links, parse_plan
    plans = []
    for text in [texts] if isinstance(texts, str) else texts or []:
        for part in str(text).split(";"):
            if not part.strip():
                raise SpecError(f"--vary-plan {shown(text)}: an empty plan (plans are separated by ';', "
                                f"e.g. \"tp=1;tp=2;tp=4\")")
            try:
                plan = parse_plan(part.strip())
            except SpecError as exc:  # named after this option, not run's --parallel
                raise SpecError(exc.message.replace("--parallel ", "--vary-plan ", 1)) from None
            check_links(plan, hw.spec, hw.id)
            if plan in plans:
                raise SpecError(f"--vary-plan: plan {plan} is given twice")
            plans.append(plan)
    return plans


def concat(blocks: list, columns: list) -> dict:
    """Blocks of rows -> one column per name; columns a block lacks (another model's stages) are NaN."""
    out = {}
    for c in columns:
        parts = []
        for b in blocks:
            n = len(b["time_s"])
            parts.append(np.asarray(b[c]) if c in b else np.full(n, np.nan))
        out[c] = np.concatenate(parts) if parts else np.array([])
    return out


def run_local(sweep: Sweep):
    """Evaluate block by block in this process, yielding (rows, points done)."""
    done = 0
    for job, start, stop in sweep.blocks():
        rows = evaluate_block(job, sweep.space.points(start, stop))
        done += stop - start
        yield rows, done


def run_dask(sweep: Sweep, scheduler: str | None = None, max_in_flight: int = 16):
    """The same blocks evaluated on a Dask distributed cluster, yielded in the same order as run_local."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        raise SpecError("--executor dask needs the optional extra: pip install -e \".[dask]\"") from None
    cluster = None
    if scheduler:
        client = Client(scheduler)
    else:
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None,
                               processes=True)
        client = Client(cluster)
    try:
        futures, done = [], 0
        blocks = list(sweep.blocks())
        scattered = {id(j): client.scatter(j, broadcast=True) for j in sweep.jobs}
        pending = iter(blocks)
        for job, start, stop in itertools.islice(pending, max_in_flight):
            futures.append((client.submit(evaluate_block, scattered[id(job)], sweep.space.points(start, stop),
                                          pure=False), stop - start))
        while futures:
            future, n = futures.pop(0)
            rows = future.result()
            for job, start, stop in itertools.islice(pending, 1):
                futures.append((client.submit(evaluate_block, scattered[id(job)], sweep.space.points(start, stop),
                                              pure=False), stop - start))
            done += n
            yield rows, done
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def _spelled(value) -> str:
    """One list value as the command line spells it: a name as is, on/off as true/false, a number exactly."""
    if isinstance(value, bool):
        return str(value).lower()
    return value if isinstance(value, str) else repr(value)


def _specs(vary) -> list[str]:
    """`--vary` texts from a list of 'FIELD=SPEC' strings or a {field: [values] | 'start:stop:num[:log]'} dict."""
    if vary is None:
        return []
    if isinstance(vary, str):
        return [vary]
    if isinstance(vary, dict):
        out = []
        for path, spec in vary.items():
            text = spec if isinstance(spec, str) else ",".join(_spelled(v) for v in
                                                               (spec if hasattr(spec, "__iter__") else [spec]))
            out.append(f"{path}={text}")
        return out
    return list(vary)


def sweep(models, hardware: str = "a100", vary=None, vary_workload=None, out: str | None = None, **options):
    """`python -m simulator sweep` as a function: rows as a list of records, or the path written when `out` is
    given (.csv, .json or .parquet, streamed block by block exactly as the CLI writes them).

    `models`: an id / path or a list of them (or 'a,b'). `vary` / `vary_workload`: {field: [values]} or
    {field: 'start:stop:num[:log]'} or a list of 'FIELD=SPEC' texts. Other keywords go to `plan()`
    (overrides, hw_overrides, attention, terms, samples, seed, max_points, fusion, ...), e.g.

        simulator.sweep("sd15", "h100", vary={"memory.bandwidth": [1e12, 2e12, 4e12]})
    """
    from .writers import FORMATS, abort, check_output, open_writer
    if out is not None:  # before any work, as the CLI does
        check_output(out, "out", suffixes=tuple(FORMATS))
    names = [m.strip() for m in models.split(",")] if isinstance(models, str) else list(models)
    sw = plan([m for m in names if m], hardware, _specs(vary), _specs(vary_workload), **options)
    if out is not None:
        writer = open_writer(out, sw.columns)
        try:
            for rows, _ in run_local(sw):
                writer.write(rows)
        except KeyboardInterrupt:  # like the CLI: the file keeps the blocks finished so far
            writer.close()
            raise
        except BaseException:  # an error: no partial file
            abort(writer, out)
            raise
        writer.close()
        return out
    blocks = [rows for rows, _ in run_local(sw)]
    table = concat(blocks, sw.columns)
    values = [[None if isinstance(v, float) and v != v else v for v in table[c].tolist()] for c in sw.columns]
    return [dict(zip(sw.columns, row)) for row in zip(*values)]


class _CallableModule(__import__("types").ModuleType):
    """`simulator.sweep` is this module (plan, run_local, ...) and, called, the `sweep()` function above."""

    def __call__(self, *args, **kwargs):
        return sweep(*args, **kwargs)


__import__("sys").modules[__name__].__class__ = _CallableModule
