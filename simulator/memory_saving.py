"""Memory-saving modes of generation pipelines: workload options every model accepts (`--set NAME=VALUE`).

What diffusers (and the reference repositories' scripts) offer to fit a large pipeline on a small device, each
with its time cost:

- `offload=model` (`DiffusionPipeline.enable_model_cpu_offload`): every component (text encoder, denoiser,
  decoder: a stage and the stages that share its weights) lives on the host and is copied to the device when it
  is first called (accelerate `CpuOffload.pre_forward`: `module.to(execution_device)`), and back when the next
  component starts or the call ends (`prev_module_hook.offload()` = `module.to("cpu")`; `maybe_free_model_hooks`
  re-applies the hooks after `self.to("cpu")`): 2 x its weights over the host link once per pipeline call. Only
  the running component's weights occupy the device. The copies are synchronous `Tensor.to` calls in the hook
  before the forward, so nothing overlaps them: their time is added to the stage.
- `offload=sequential` (`enable_sequential_cpu_offload`, accelerate `cpu_offload`): every leaf module's weights
  are copied in by `AlignDevicesHook.pre_forward` on every call and dropped (set to the meta device, no copy
  back) by `post_forward`: a stage's weights cross the host link once per call (every step, every CFG pass),
  and one module's weights are resident at a time.
- `vae_tiling` (`enable_vae_tiling`): the decoder runs on overlapping spatial tiles of `tile` pixels placed
  every `stride` pixels (tiles at the right and bottom edges are cut short), so its activations are one tile's;
  the overlap is decoded twice, which is its time cost. The geometry is the model's (the decoder stage's
  `tiling: {tile, stride}`, from its VAE class's defaults); the decoded output of the whole image stays resident
  while the tiles run.
- `vae_slicing` (`enable_vae_slicing`): a batch of latents is decoded one sample at a time.
- `text_encoder_device=cpu` (Wan's `--t5_cpu`): the stages named `text_encoder*` run on the host CPU: their
  weights and activations leave the device, and their time is the CPU's roofline (the host's fp32 FMA peak and
  DRAM bandwidth from the hardware file's `host:`; a lower bound, as no CPU efficiency is modelled).

Not modelled: the per-tensor latency of the many small copies of sequential offload, the row-by-row blending
of tiled decoding (a few elementwise kernels per overlap row), and the energy of the host CPU. (Video VAEs that
decode chunk by chunk by default, in time, do so in their model files' decoder stage: an iteration per call.)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .dtypes import BYTES
from .errors import Location, SpecError
from .params import Param

OFFLOAD = ("none", "model", "sequential")
DEVICES = ("gpu", "cpu")

OPTIONS = {
    "offload": Param("offload", "none", "str", choices=OFFLOAD,
                     help="weights kept on the host: none; model (each component copied in once per call, "
                          "diffusers enable_model_cpu_offload); sequential (every module's weights streamed in on "
                          "every call, enable_sequential_cpu_offload)"),
    "vae_tiling": Param("vae_tiling", False, "bool",
                        help="decode in overlapping spatial tiles (diffusers enable_vae_tiling)"),
    "vae_slicing": Param("vae_slicing", False, "bool",
                         help="decode a batch one sample at a time (diffusers enable_vae_slicing)"),
    "text_encoder_device": Param("text_encoder_device", "gpu", "str", choices=DEVICES,
                                 help="where the text encoders run: gpu, or cpu (the host CPU, Wan's --t5_cpu)"),
}
DECODER = "decoder"          # the stage that tiling and slicing act on
TEXT_ENCODER = "text_encoder"  # stages whose name starts with this run on the CPU with text_encoder_device=cpu


@dataclass(frozen=True)
class Modes:
    offload: str = "none"
    vae_tiling: bool = False
    vae_slicing: bool = False
    text_encoder_device: str = "gpu"

    @property
    def active(self) -> bool:
        return self != Modes()

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in OPTIONS}

    @property
    def host_fields(self) -> tuple:
        """Prefixes of the hardware fields these modes read: the host link under offload, the host CPU when the
        text encoder runs there (no other term reads either)."""
        return (("host_link.",) if self.offload != "none" else ()) + \
            (("host.",) if self.text_encoder_device == "cpu" else ())

    def describe(self) -> str:
        """'offload=model, vae_tiling, text_encoder_device=cpu' (the modes that are on), or ''."""
        on = []
        for name, param in OPTIONS.items():
            value = getattr(self, name)
            if value != param.default:
                on.append(name if value is True else f"{name}={value}")
        return ", ".join(on)


def take(overrides: dict, declared: dict) -> tuple[Modes, dict]:
    """The memory-saving modes among `--set` values, checked, and the remaining overrides. A model that declares
    a parameter of the same name keeps it as its own."""
    chosen, rest = {}, {}
    for key, value in overrides.items():
        if key in OPTIONS and key not in declared:
            chosen[key] = OPTIONS[key].check(value, "--set")
        else:
            rest[key] = value
    return Modes(**chosen), rest


def check(modes: Modes, stage_specs: list, params: dict, file: str):
    """Refuse a mode the model has nothing to apply to (a silently ignored option is a wrong answer)."""
    stage_names = [s.name for s in stage_specs]
    if (modes.vae_tiling or modes.vae_slicing) and DECODER not in stage_names:
        flag = "vae_tiling" if modes.vae_tiling else "vae_slicing"
        raise SpecError(f"--set {flag}=true: this model has no '{DECODER}' stage to decode in "
                        f"{'tiles' if modes.vae_tiling else 'slices'} (stages: {', '.join(stage_names)})",
                        Location(file))
    decoder = next((s for s in stage_specs if s.name == DECODER), None)
    if modes.vae_tiling and (decoder.tiling is None or not {"height", "width"} <= set(params)):
        raise SpecError(f"--set vae_tiling=true: this model's '{DECODER}' stage declares no tile geometry "
                        f"(tiling: {{tile, stride}} in output pixels, from its VAE's defaults) or it has no height "
                        f"and width", Location(file))
    if decoder is not None and decoder.tiling is not None and decoder.tiling.stride > decoder.tiling.tile:
        raise SpecError(f"{DECODER}.tiling: stride {decoder.tiling.stride} is above tile {decoder.tiling.tile}: "
                        f"tiles must overlap or touch", Location(file))
    if modes.vae_slicing and "batch" not in params:
        raise SpecError("--set vae_slicing=true: this model has no 'batch' parameter to slice", Location(file))
    if modes.text_encoder_device == "cpu" and not any(n.startswith(TEXT_ENCODER) for n in stage_names):
        raise SpecError(f"--set text_encoder_device=cpu: this model has no '{TEXT_ENCODER}' stage "
                        f"(stages: {', '.join(stage_names)})", Location(file))


def tile_extents(size: int, tile: int, stride: int) -> dict:
    """extent -> how many tiles of it along one axis: tiles start every `stride` pixels and hold `tile` pixels,
    cut short at the edge (diffusers' tiled_decode: `for i in range(0, h, stride): z[..., i:i + tile]`)."""
    out: dict = {}
    for start in range(0, size, stride):
        extent = min(tile, size - start)
        out[extent] = out.get(extent, 0) + 1
    return out


def decoder_runs(params: dict, modes: Modes, tiling) -> list | None:
    """How the decoder runs under tiling and slicing: [(workload overrides, runs)], the first the most common
    tile shape; None when it runs once on the whole batch (every stage but the decoder, or neither mode on)."""
    runs = [({}, 1)]
    if modes.vae_slicing and params["batch"] > 1:
        runs = [({"batch": 1}, params["batch"])]
    if modes.vae_tiling:
        h, w, tile, stride = params["height"], params["width"], tiling.tile, tiling.stride
        # diffusers tiles only when the image is larger than one tile (AutoencoderKL.decode: `z.shape[-1] >
        # tile_latent_min_size or z.shape[-2] > ...`; the video VAEs alike)
        if h > tile or w > tile:
            rows, cols = tile_extents(h, tile, stride), tile_extents(w, tile, stride)
            tiles = sorted(((rh * cw, {"height": eh, "width": ew}) for eh, rh in rows.items()
                            for ew, cw in cols.items()), key=lambda t: (-t[0], -t[1]["height"], -t[1]["width"]))
            runs = [({**over, **shape}, n * count) for over, n in runs for count, shape in tiles]
    return runs if runs != [({}, 1)] else None


def variant_name(overrides: dict) -> str:
    """The stage name of one decoder run shape after the first, e.g. 'decoder[96x256]'."""
    if "height" in overrides:
        return f"{DECODER}[{overrides['height']}x{overrides['width']}]"
    return f"{DECODER}[batch 1]"


def output_bytes(stage) -> int:
    """Bytes of a stage's final result (its last op's outputs)."""
    last = stage.ops[-1]
    return sum(int(np.prod(stage.tensors[t].shape)) * BYTES[stage.tensors[t].dtype] for t in last.outputs)


# ------------------------------------------------------------------------------------------------- memory

def on_cpu(stage, modes: Modes) -> bool:
    return modes.text_encoder_device == "cpu" and stage.name.startswith(TEXT_ENCODER)


def owner(stage) -> str:
    """The component whose weights a stage runs: its own, or the earlier stage's it shares."""
    return stage.shares_weights_with or stage.name


def component_bytes(stages: list) -> dict:
    return {s.name: s.weight_bytes for s in stages if not s.shares_weights_with}


def resident_weight_bytes(stages: list, modes: Modes) -> list:
    """Per stage: the weight bytes on the device while it runs."""
    weights = component_bytes(stages)
    gpu = [s for s in stages if not on_cpu(s, modes)]
    if modes.offload == "none":
        total = sum(weights[n] for n in {owner(s) for s in gpu})
        return [0 if on_cpu(s, modes) else total for s in stages]
    if modes.offload == "sequential":  # one module (op) at a time
        return [0 if on_cpu(s, modes) else
                max((op.weight_bytes for op in s.ops), default=0) for s in stages]
    out, last = [], 0  # model: the running component; a stage without weights keeps the previous one resident
    for s in stages:
        if on_cpu(s, modes):
            out.append(0)
            continue
        if weights.get(owner(s), 0) > 0:
            last = weights[owner(s)]
        out.append(last)
    return out


def peak_memory_bytes(stages: list, modes: Modes) -> int:
    """Device memory at the worst stage: the weights resident then plus that stage's activations and state
    (without offload: all device weights plus the largest stage's activations, as before)."""
    gpu = [s for s in stages if not on_cpu(s, modes)]
    if not gpu:
        return 0
    resident = resident_weight_bytes(stages, modes)
    if modes.offload == "none":
        return max(resident) + max(s.peak_activation_bytes + s.state_bytes for s in gpu)
    return max(r + s.peak_activation_bytes + s.state_bytes for r, s in zip(resident, stages) if not on_cpu(s, modes))


# --------------------------------------------------------------------------------------------------- time

def transfer_bytes(stages: list, modes: Modes) -> np.ndarray:
    """Per stage: bytes of weights copied over the host link in one pipeline call."""
    out = np.zeros(len(stages))
    if modes.offload == "none":
        return out
    weights = component_bytes(stages)
    seen = set()
    for i, s in enumerate(stages):
        if on_cpu(s, modes) or s.repeat == 0:
            continue
        w = weights.get(owner(s), 0)
        if modes.offload == "sequential":
            out[i] = w * s.repeat            # copied in on every call, dropped after it
        elif owner(s) not in seen and w > 0:
            seen.add(owner(s))
            out[i] = 2 * w                   # in before the first call, back out when the next component starts
    return out


def stage_seconds(model, table, spec) -> tuple[np.ndarray, np.ndarray]:
    """(host-link transfer seconds, host CPU seconds) per stage of one pipeline call on device `spec`."""
    transfer, cpu = host_seconds(host_work(model, table), spec)
    return transfer[0], cpu[0]


@dataclass(frozen=True)
class HostWork:
    """What one pipeline call does off the device in the memory-saving modes, independent of the device: weight
    bytes copied over the host link per stage, and the kernels of the stages run on the host CPU (their stage,
    FLOPs, bytes and runs). Small, so a sweep's jobs carry it to every design point."""
    offload: str
    moved: np.ndarray           # [stages] bytes over the host link
    cpu_stages: tuple           # indices of the stages run on the host CPU
    stage: np.ndarray           # the CPU kernels' stage, FLOPs, bytes and runs
    flops: np.ndarray
    bytes: np.ndarray
    count: np.ndarray


def host_work(model, table) -> HostWork:
    rows = cpu_rows(model, table)
    return HostWork(model.memory.offload, transfer_bytes(model.stages, model.memory),
                    tuple(i for i, s in enumerate(model.stages) if on_cpu(s, model.memory)),
                    table.stage[rows], table.flops[rows], table.bytes[rows], table.count[rows])


def host_seconds(work: HostWork, spec, varied: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(transfer, CPU) seconds, [points, stages] each, on device `spec` at the design points of `varied` (arrays of
    the host fields a sweep varies: `host_link.bandwidth`, `host.flops`, ...; the others are the file's).

    A stage run on the CPU is costed as a roofline on the host: each kernel takes the longer of its FLOPs at the
    host's fp32 FMA peak and its bytes at the host's DRAM bandwidth."""
    varied = varied or {}
    n = len(next(iter(varied.values()))) if varied else 1

    def value(group, path: str) -> np.ndarray:
        return np.broadcast_to(np.asarray(varied.get(path, getattr(group, path.partition(".")[2])), dtype=float),
                               (n,))
    stages = len(work.moved)
    transfer, cpu = np.zeros((n, stages)), np.zeros((n, stages))
    if work.moved.any():
        link = spec.host_link
        if link is None:
            raise SpecError(f"--set offload={work.offload}: hardware '{spec.name}' gives no host_link "
                            f"(bandwidth and efficiency of its PCIe link); add one to its file")
        rate = value(link, "host_link.bandwidth") * value(link, "host_link.efficiency")
        transfer = work.moved[None, :] / rate[:, None]
    if work.cpu_stages:
        if spec.host is None:
            raise SpecError(f"--set text_encoder_device=cpu: hardware '{spec.name}' gives no host CPU "
                            f"(host: name, flops, bandwidth); add one to its file")
        per_kernel = np.maximum(work.flops[None, :] / value(spec.host, "host.flops")[:, None],
                                work.bytes[None, :] / value(spec.host, "host.bandwidth")[:, None]) * work.count
        for i in work.cpu_stages:
            cpu[:, i] = per_kernel[:, work.stage == i].sum(axis=1)
    return transfer, cpu


def cpu_rows(model, table) -> np.ndarray:
    """Kernel rows of the stages that run on the host CPU (their device cost is zero)."""
    idx = [i for i, s in enumerate(model.stages) if on_cpu(s, model.memory)]
    return np.isin(table.stage, idx) if idx else np.zeros(len(table.stage), dtype=bool)
