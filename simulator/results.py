"""Results of one model on one device, and their groupings (op, layer, category, stage).

Everything here reads the engine's per-kernel times; nothing recomputes a cost.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .engine import BOUNDS, KernelTable, Terms
from .graph import Model
from .hardware import Hardware
from .metrics import group_sum, intensity
from .ops import CATEGORIES, UNITS


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
    def time_s(self) -> float:
        return self.device_time_s + self.host_time_s

    @property
    def roofline_time_s(self) -> float:
        return float(self.roofline["time"] @ self.table.count)

    @property
    def flops(self) -> float:
        return float(self.table.flops @ self.table.count)

    @property
    def bytes(self) -> float:
        return float(self.table.bytes @ self.table.count)

    @property
    def peak_memory_bytes(self) -> int:
        return self.model.peak_memory_bytes

    @property
    def kv_cache_bytes(self) -> int:
        return max(s.state_bytes for s in self.model.stages)

    @property
    def fits(self) -> bool:
        return self.peak_memory_bytes <= self.hardware.spec.memory.capacity

    # ------------------------------------------------------------------------------------- groupings
    def _sum(self, keys: np.ndarray, n: int, values: np.ndarray) -> np.ndarray:
        return group_sum(keys, n, values, self.table.count)

    def _group(self, keys: np.ndarray, n: int) -> dict:
        t, c = self.table, self.costs
        out = {name: self._sum(keys, n, v) for name, v in (
            ("time_s", c["time"]), ("flops", t.flops), ("bytes", t.bytes), ("compute_s", c["compute"]),
            ("memory_s", c["memory"]), ("overhead_s", c["overhead"]), ("roofline_time_s", self.roofline["time"]))}
        out["matrix_flops"] = self._sum(keys, n, np.where(t.unit == UNITS.index("matrix"), t.flops, 0.0))
        by_bound = np.stack([self._sum(keys, n, np.where(c["bound"] == b, c["time"], 0.0))
                             for b in range(len(BOUNDS))])
        out["bound"] = [BOUNDS[i] if by_bound[i, j] > 0 else "none"
                        for j, i in enumerate(np.argmax(by_bound, axis=0))]
        return out

    def by_category(self) -> dict:
        g = self._group(self.table.category, len(CATEGORIES))
        return {cat: {k: _plain(v[i]) for k, v in g.items()} for i, cat in enumerate(CATEGORIES)}

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
            row["time_s"] = row["device_time_s"] + row["host_s"]
            # `bound` is the device's (compute, memory, overhead); `limited_by` says whether the host's pace of
            # issuing kernels, not the device, set the stage's time
            row["limited_by"] = "host" if row["host_s"] > row["device_time_s"] else "device"
            rows.append(row)
        return rows

    def op_backends(self) -> list:
        """The kernel or attention back-end the mapping chose for each op ('' where the op had no choice)."""
        chosen = [""] * len(self.table.ops)
        for op, b in zip(self.table.op, self.table.backend):
            if not chosen[op]:
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
        g = self._group(op_layer[self.table.op], len(keys))
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
            "totals": self.totals(),
            "stages": [{k: r[k] for k in ("name", "repeat", "params", "time_s", "flops", "bytes", "roofline_time_s",
                                          "peak_activation_bytes", "kv_cache_bytes", "bound", "host_s",
                                          "device_time_s", "limited_by")}
                       for r in self.by_stage()],
            "categories": {c: {k: v[k] for k in ("time_s", "flops", "bytes", "roofline_time_s")}
                           for c, v in self.by_category().items()},
            "ops": [{k: r[k] for k in ("name", "stage", "layer", "kind", "category", "role", "count", "shape",
                                       "params", "backend", "flops", "bytes", "intensity", "time_s", "compute_s",
                                       "memory_s", "overhead_s", "bound")}
                    for r in self.by_op()],
            "warnings": list(self.warnings),
        }


    def totals(self) -> dict:
        """The whole run's figures (the JSON's `totals`), without building the per-op and per-layer lists."""
        return {
            "time_s": self.time_s,
            "device_time_s": self.device_time_s,
            "host_s": self.host_time_s,
            "expected_error": self.expected_error(),
            "roofline_time_s": self.roofline_time_s,
            "flops": self.flops,
            "bytes": self.bytes,
            "params": self.model.param_count,
            "weight_bytes": self.model.weight_bytes,
            "peak_memory_bytes": self.peak_memory_bytes,
            "kv_cache_bytes": self.kv_cache_bytes,
            "memory_capacity_bytes": self.hardware.spec.memory.capacity,
            "fits": self.fits,
        }

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

