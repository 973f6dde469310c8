"""Results of one model on one device, and their groupings (op, layer, category, stage).

Everything here reads the engine's per-kernel times; nothing recomputes a cost.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .engine import BOUNDS, KernelTable, Terms
from .graph import Model
from .hardware import Hardware
from .metrics import comm_seconds, energy_on_devices, group_sum, intensity
from .ops import CATEGORIES, COMM, UNITS


@dataclass
class Result:
    model: Model
    hardware: Hardware
    terms: Terms
    table: KernelTable
    costs: dict           # per-kernel arrays (one design point)
    roofline: dict        # the same with every efficiency term off
    warnings: list = field(default_factory=list)
    stack: object = None  # stacks.Stack the model ran under
    host_s: np.ndarray | None = None  # per stage: seconds the host adds beyond the device
    # per stage: seconds of weight copies over the host link, and of stages run on the host CPU (memory-saving
    # modes, simulator/memory_saving.py); the device waits through both
    transfer_s: np.ndarray | None = None
    cpu_s: np.ndarray | None = None

    @property
    def fusion(self) -> str:
        return self.stack.spec.fusion if self.stack is not None else "none"

    def __repr__(self) -> str:
        """One line (the dataclass default would print every kernel: megabytes)."""
        m = self.model
        extra = f", stack={self.stack.id!r}" if self.stack is not None else ""
        return (f"Result(model={m.id!r}, hardware={self.hardware.id!r}, time_s={self.time_s:.4g}, "
                f"roofline_time_s={self.roofline_time_s:.4g}, peak_memory={self.peak_memory_bytes / 2**30:.3g} GiB, "
                f"capacity={self.hardware.spec.memory.capacity / 2**30:.3g} GiB, fits={self.fits}, "
                f"attention={m.attention!r}, fusion={self.fusion!r}{extra}, warnings={len(self.warnings)})")

    # ---------------------------------------------------------------------------------------- totals
    @property
    def device_time_s(self) -> float:
        return float(self.costs["time"] @ self.table.count)

    @property
    def host_time_s(self) -> float:
        """Seconds the host adds beyond the device (kernels issued more slowly than they run)."""
        return float(self.host_s.sum()) if self.host_s is not None else 0.0

    @property
    def offload_time_s(self) -> float:
        """Seconds of the memory-saving modes: weight copies over the host link and stages run on the CPU."""
        return sum(float(a.sum()) for a in (self.transfer_s, self.cpu_s) if a is not None)

    @property
    def time_s(self) -> float:
        return self.device_time_s + self.host_time_s + self.offload_time_s

    @property
    def roofline_time_s(self) -> float:
        return float(self.roofline["time"] @ self.table.count)

    @property
    def flops(self) -> float:
        """The model's FLOPs (without the dequantisation work of weight-only quantisation: `dequant_flops`)."""
        return float(self.model_flops @ self.table.count)

    @property
    def dequant_flops(self) -> float:
        """Vector FLOPs of dequantising weights inside weight-only GEMMs (quantisation.py): costed in the time,
        reported apart from the model's FLOPs so that FLOP/B and TFLOP/s describe the model."""
        return float(self.dequant_flops_per_kernel @ self.table.count)

    @property
    def dequant_flops_per_kernel(self) -> np.ndarray:
        t = self.table
        return np.where(t.eff == t.effs.index("dequant"), t.flops, 0.0) if "dequant" in t.effs \
            else np.zeros(len(t))

    @property
    def model_flops(self) -> np.ndarray:
        """Per kernel, the FLOPs that are the model's (all but the dequantisation work)."""
        return self.table.flops - self.dequant_flops_per_kernel

    @property
    def bytes(self) -> float:
        return float(self.table.bytes @ self.table.count)

    @property
    def sharding(self):
        """The multi-device plan's record (parallel.Sharding), None on one device."""
        return self.table.sharding

    @property
    def plan(self):
        return self.sharding.plan if self.sharding is not None else None

    @property
    def devices(self) -> int:
        return self.plan.devices if self.plan is not None else 1

    @property
    def pipeline(self) -> int:
        """Pipeline stages (the plan's pp; 1 on one device)."""
        return self.plan.pp if self.plan is not None else 1

    @property
    def peak_memory_bytes(self) -> int:
        """Per device: on several devices, one device's share of weights, KV cache and activations."""
        if self.sharding is not None:
            return int(self.sharding.peak_memory_bytes)
        return self.model.peak_memory_bytes

    @property
    def kv_cache_bytes(self) -> int:
        return max(s.state_bytes for s in self.model.stages)

    @property
    def kv_bytes_per_token(self) -> float:
        """KV-cache bytes per cached position of the whole batch (at kv_dtype), in the stage holding the most."""
        stage = max(self.model.stages, key=lambda s: s.state_bytes)
        return sum(op.result.state / op.result.state_tokens * op.count for op in stage.ops if op.result.state_tokens)

    @property
    def fits(self) -> bool:
        return self.peak_memory_bytes <= self.hardware.spec.memory.capacity

    # ------------------------------------------------------------------------------------- groupings
    def _sum(self, keys: np.ndarray, n: int, values: np.ndarray) -> np.ndarray:
        if self.sharding is not None and (keys < 0).any():  # collectives belong to no op or layer
            keep = keys >= 0
            return group_sum(keys[keep], n, values[keep] if np.ndim(values) else values, self.table.count[keep])
        return group_sum(keys, n, values, self.table.count)

    def _group(self, keys: np.ndarray, n: int) -> dict:
        t, c = self.table, self.costs
        out = {name: self._sum(keys, n, v) for name, v in (
            ("time_s", c["time"]), ("flops", self.model_flops), ("dequant_flops", self.dequant_flops_per_kernel),
            ("bytes", t.bytes), ("compute_s", c["compute"]),
            ("memory_s", c["memory"]), ("overhead_s", c["overhead"]), ("roofline_time_s", self.roofline["time"]))}
        if "comm" in c:  # as metrics.comm_seconds: the collectives' rows' times, launches included
            out["comm_s"] = self._sum(keys, n, np.where(t.unit == UNITS.index("comm"), c["time"], 0.0))
        if "energy" in c:  # the kernels' energy on one device less their static part is their dynamic energy
            out["energy_j"] = energy_on_devices(self._sum(keys, n, c["energy"]) - self.static_w * out["time_s"],
                                                self.static_w, out["time_s"], self.devices, self.pipeline)
        out["matrix_flops"] = self._sum(keys, n, np.where(t.unit == UNITS.index("matrix"), t.flops, 0.0))
        by_bound = np.stack([self._sum(keys, n, np.where(c["bound"] == b, c["time"], 0.0))
                             for b in range(len(BOUNDS))])
        out["bound"] = [BOUNDS[i] if by_bound[i, j] > 0 else "none"
                        for j, i in enumerate(np.argmax(by_bound, axis=0))]
        return out

    def by_category(self) -> dict:
        cats = CATEGORIES + ((COMM,) if (self.table.category == len(CATEGORIES)).any() else ())
        g = self._group(self.table.category, len(cats))
        return {cat: {k: _plain(v[i]) for k, v in g.items()} for i, cat in enumerate(cats)}

    def by_stage(self) -> list:
        g = self._group(self.table.stage, len(self.model.stages))
        rows = []
        host = self.host_s if self.host_s is not None else np.zeros(len(self.model.stages))
        for i, s in enumerate(self.model.stages):
            row = {"name": s.name, "repeat": s.repeat, "params": s.params,
                   "shares_weights_with": s.shares_weights_with,
                   "peak_activation_bytes": s.peak_activation_bytes, "kv_cache_bytes": s.state_bytes,
                   **{k: _plain(v[i]) for k, v in g.items()}}
            row["device_time_s"] = row["time_s"]
            row["host_s"] = float(host[i])
            row["transfer_s"] = float(self.transfer_s[i]) if self.transfer_s is not None else 0.0
            row["cpu_s"] = float(self.cpu_s[i]) if self.cpu_s is not None else 0.0
            row["time_s"] = row["device_time_s"] + row["host_s"] + row["transfer_s"] + row["cpu_s"]
            # `bound` is the device's (compute, memory, overhead); `limited_by` says whether the host's pace of
            # issuing kernels, not the device, set the stage's time
            row["limited_by"] = "host" if row["host_s"] > row["device_time_s"] else "device"
            # (a stage run on the host CPU, or one that waits longer for its weights than it computes)
            if row["cpu_s"] > 0:
                row["limited_by"] = "cpu"
            elif row["transfer_s"] > row["device_time_s"] + row["host_s"]:
                row["limited_by"] = "host_link"
            # the time the host adds, the devices wait at static power
            energy = row.get("energy_j", float("nan")) + \
                self.static_w * (row["host_s"] + row["transfer_s"] + row["cpu_s"]) * self.devices
            row["energy_j"] = energy if np.isfinite(energy) else None
            rows.append(row)
        return rows

    def op_backends(self) -> list:
        """The kernel or attention back-end the mapping chose for each op ('' where the op had no choice)."""
        chosen = [""] * len(self.table.ops)
        for op, b in zip(self.table.op, self.table.backend):
            if op >= 0 and not chosen[op]:
                chosen[op] = self.table.backends[b]
        return chosen

    def by_op(self) -> list:
        g = self._group(self.table.op, len(self.table.ops))
        backends = self.op_backends()
        rows = []
        for i, (si, op) in enumerate(self.table.ops):
            stage = self.model.stages[si]
            runs = op.count * stage.repeat
            row = {"name": op.name, "stage": stage.name, "layer": op.layer, "kind": op.kind,
                   "category": op.category, "role": op.role, "count": runs,
                   "shape": list(op.result.outputs[0]) if op.result.outputs else [],
                   "params": op.result.params * op.count, "backend": backends[i],
                   **{k: _plain(v[i]) for k, v in g.items()}}
            row["intensity"] = intensity(row["flops"], row["bytes"])
            rows.append(row)
        return rows

    def by_layer(self) -> list:
        """Ops grouped by their top-level instance in each stage (a UNet block, a repeated decoder layer, ...)."""
        keys, index, ops, params = [], {}, [], []
        op_layer = np.empty(len(self.table.ops), dtype=np.int64)
        for i, (si, op) in enumerate(self.table.ops):
            key = (self.model.stages[si].name, op.layer)
            if key not in index:
                index[key] = len(keys)
                keys.append(key)
                ops.append(0)
                params.append(0)
            j = op_layer[i] = index[key]
            ops[j] += 1
            params[j] += op.result.params * op.count
        g = self._group(np.where(self.table.op >= 0, op_layer[self.table.op], -1), len(keys))
        rows = []
        for j, (stage, layer) in enumerate(keys):
            row = {"stage": stage, "layer": layer, "ops": ops[j], "params": params[j],
                   **{k: _plain(v[j]) for k, v in g.items()}}
            row["intensity"] = intensity(row["flops"], row["bytes"])
            rows.append(row)
        return rows

    def to_dict(self) -> dict:
        """The stable JSON shape documented in README.md."""
        m = self.model
        return {
            "model": m.id,
            "model_name": m.name,
            "family": m.family,
            "hardware": self.hardware.id,
            "hardware_name": self.hardware.name,
            "attention": m.attention,
            "stack": self.stack.id if self.stack is not None else None,
            "fusion": self.fusion,
            "efficiency": self.terms.describe(),
            "provenance": self.provenance(),
            "params": {k: v for k, v in m.params.items()},
            "memory_saving": m.memory.to_dict(),
            "precision": m.precision.to_dict(),
            "totals": self.totals(),
            "stages": [{k: r[k] for k in ("name", "repeat", "params", "time_s", "flops", "bytes", "roofline_time_s",
                                          "peak_activation_bytes", "kv_cache_bytes", "bound", "host_s",
                                          "device_time_s", "limited_by", "energy_j", "transfer_s", "cpu_s")}
                       for r in self.by_stage()],
            "categories": {c: {k: v[k] for k in ("time_s", "flops", "bytes", "roofline_time_s")}
                           for c, v in self.by_category().items()},
            "ops": [{k: r[k] for k in ("name", "stage", "layer", "kind", "category", "role", "count", "shape",
                                       "params", "backend", "flops", "bytes", "intensity", "time_s", "compute_s",
                                       "memory_s", "overhead_s", "bound")}
                    for r in self.by_op()],
            "warnings": list(self.warnings),
            "serving": self.serving(),
            **({"plan": self.plan.to_dict(), "comm_overlap": bool(self.table.comm_overlap),
                "memory_per_device": self.memory_per_device()} if self.sharding is not None else {}),
        }

    def memory_per_device(self) -> dict:
        """One device's weights, KV cache, activations and peak, and whether it fits."""
        sh = self.sharding
        if sh is None:
            weights, kv = self.model.weight_bytes, self.kv_cache_bytes
            act = max(s.peak_activation_bytes for s in self.model.stages)
        else:
            weights, kv, act = sh.weight_bytes, sh.kv_cache_bytes, sh.activation_bytes
        return {"weight_bytes": float(weights), "kv_cache_bytes": float(kv), "activation_bytes": float(act),
                "peak_memory_bytes": float(self.peak_memory_bytes),
                "capacity_bytes": float(self.hardware.spec.memory.capacity), "fits": self.fits}

    def serving(self) -> dict:
        """Latency and throughput as served: for autoregressive models time to first token (every stage up to
        the first one with an iteration variable), time per output token (that stage's time per repeat),
        tokens/s in total and per device, and the largest batch whose KV cache and activations fit beside the
        weights; for the others, images or videos per second. One request (batch) at a time: pipeline stages are
        not overlapped across requests."""
        stages = self.by_stage()
        batch = self.model.params.get("batch", 1)
        batch = batch if isinstance(batch, int) and batch > 0 else 1
        out = {"batch": batch, "devices": self.devices}
        loop = next((i for i, s in enumerate(self.model.stages) if s.iteration is not None), None)
        if loop is None:
            per_s = batch / self.time_s if self.time_s > 0 else 0.0
            unit = "videos" if self.model.family in ("ttv", "video") else "images"
            out.update({f"{unit}_per_s": per_s, f"{unit}_per_s_per_device": per_s / self.devices})
            return out
        ttft = sum(r["time_s"] for r in stages[:loop])
        repeat = max(self.model.stages[loop].repeat, 1)
        tokens = batch * (self.model.stages[loop].repeat + 1)
        total = tokens / self.time_s if self.time_s > 0 else 0.0
        mem = self.memory_per_device()
        per_sequence = (mem["kv_cache_bytes"] + mem["activation_bytes"]) / batch
        room = mem["capacity_bytes"] - mem["weight_bytes"]
        # the longest context (KV-cache positions per sequence, at kv_dtype) whose cache fits beside the weights
        # and this workload's activations: a position of every sequence a device holds costs this device its share
        # of the whole batch's bytes per position (the plan's split of the KV cache, dp's included)
        per_token = self.kv_bytes_per_token * (mem["kv_cache_bytes"] / self.kv_cache_bytes if self.kv_cache_bytes
                                               else 0.0)
        free = room - mem["activation_bytes"]
        out.update({"ttft_s": ttft, "tpot_s": stages[loop]["time_s"] / repeat, "tokens_per_s": total,
                    "tokens_per_s_per_device": total / self.devices,
                    "max_batch": int(max(room, 0) // per_sequence) if per_sequence > 0 else None,
                    "max_context_tokens": int(max(free, 0) // per_token) if per_token > 0 else None})
        return out


    def totals(self) -> dict:
        """The whole run's figures (the JSON's `totals`), without building the per-op and per-layer lists.

        On several devices `params`, `weight_bytes` and `kv_cache_bytes` are the whole model's, `peak_memory_bytes`
        and `fits` one device's, `flops` and `bytes` the kernel table's (one device's share; under pp every layer
        once); `per_device` holds one device's weights, KV cache, activations and peak."""
        return {
            "time_s": self.time_s,
            "device_time_s": self.device_time_s,
            "host_s": self.host_time_s,
            "offload_s": self.offload_time_s,
            "expected_error": self.expected_error(),
            "roofline_time_s": self.roofline_time_s,
            "flops": self.flops,
            "dequant_flops": self.dequant_flops,
            "bytes": self.bytes,
            "params": self.model.param_count,
            "weight_bytes": self.model.weight_bytes,
            "peak_memory_bytes": self.peak_memory_bytes,
            "kv_cache_bytes": self.kv_cache_bytes,
            "memory_capacity_bytes": self.hardware.spec.memory.capacity,
            "fits": self.fits,
            **({"devices": self.devices, "comm_s": self.comm_time_s,
                "per_device": {k: v for k, v in self.memory_per_device().items() if k.endswith("_bytes")}}
               if self.sharding is not None else {}),
            "energy_j": self.energy_j,
            "avg_power_w": self.avg_power_w,
        }

    @property
    def static_w(self) -> float:
        """The device's static power (NaN without a power model)."""
        power = self.hardware.spec.power
        return power.static_w if power is not None else float("nan")

    @property
    def energy_j(self) -> float | None:
        """Joules of one run on all its devices: the kernels' dynamic energy (the engine's kernel energy less its
        static part) once per device share of the table (metrics.energy_on_devices: a pipeline's table holds
        every layer once), plus every device's static power over the whole time; None where the device file has
        no power model."""
        if "energy" not in self.costs:
            return None
        dynamic = float(self.costs["energy"] @ self.table.count) - self.static_w * self.device_time_s
        e = energy_on_devices(dynamic, self.static_w, self.time_s, self.devices, self.pipeline)
        return e if np.isfinite(e) else None

    @property
    def avg_power_w(self) -> float | None:
        """Average power of each device over the run (energy over time, per device)."""
        e = self.energy_j
        return e / self.devices / self.time_s if e is not None and self.time_s > 0 else None

    @property
    def comm_time_s(self) -> float:
        """Seconds of collectives between devices: exposed link time and their launches (metrics.comm_seconds)."""
        return float(comm_seconds(self.costs["time"], self.table))

    def provenance(self) -> dict:
        """What produced this answer: the simulator's version, and the exact hardware and stack files."""
        import hashlib
        from pathlib import Path
        from . import __version__
        hw = Path(self.hardware.file)
        return {"version": __version__,
                "hardware_file": hw.name, "hardware_sha256": hashlib.sha256(hw.read_bytes()).hexdigest(),
                "hardware_overrides": self.hardware.id.endswith("*"),
                "stack": self.stack.id if self.stack is not None else None,
                "stack_sha256": self.stack.sha256 if self.stack is not None else None,
                "borrowed": dict(self.hardware.spec.borrowed)}

    def expected_error(self) -> dict | None:
        """How far to trust the total: the validated error of this model family under this stack against
        published end-to-end measurements (measurements/expected-error.json, written by `validate --public`)."""
        from .trust import expected_error
        return expected_error(self.model.family, self.stack.id.rstrip("*") if self.stack is not None else None)


def _plain(v):
    return v.item() if hasattr(v, "item") else v

