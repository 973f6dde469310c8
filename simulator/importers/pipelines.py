"""A diffusers pipeline folder (model_index.json + one sub-folder per component) as one model: the text encoders,
the denoiser run `steps` times with classifier-free guidance as the pipeline runs it, the VAE decoder; as the
built-in models of the same pipelines (sd15, sd21, sdxl, dit-xl-2, pixart-alpha, sd3-medium, flux1-dev,
modelscope-t2v). The sampler's own arithmetic is one update of the latents per step (a few elementwise ops)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import Location, SpecError, unknown
from ..importer import (Config, Part, builders, dtype_param, model_file, op, parameter, read_config,
                        read_json)


@dataclass(frozen=True)
class Defaults:
    """A pipeline's __call__ defaults (diffusers 0.42) that set the workload: num_inference_steps, whether
    guidance_scale > 1 runs the negative prompt (CFG), max_sequence_length of its T5 prompt, and the dtype its
    model card loads it in."""
    steps: int
    cfg: bool = True
    text_tokens: int | None = None   # None: the first text encoder's max_position_embeddings
    dtype: str = "fp16"


PIPELINES = {
    "StableDiffusionPipeline": Defaults(50),
    "StableDiffusionXLPipeline": Defaults(50),
    "DiTPipeline": Defaults(50),                          # guidance_scale 4.0
    "PixArtAlphaPipeline": Defaults(20, text_tokens=120),  # guidance_scale 4.5, max_sequence_length 120
    "StableDiffusion3Pipeline": Defaults(28, text_tokens=256),   # guidance_scale 7.0
    # guidance-distilled: guidance_scale is an input, true_cfg_scale 1.0 (no negative batch); bfloat16 model card
    "FluxPipeline": Defaults(28, cfg=False, text_tokens=512, dtype="bf16"),
    "TextToVideoSDPipeline": Defaults(50),                # num_frames 16, guidance_scale 9.0
}
# CLIP tokenizer_max_length: the CLIP encoders of SD3 and Flux always see 77 tokens
CLIP_TOKENS = 77


def component(folder: Path, index: dict, name: str, index_path: Path) -> Config:
    entry = index.get(name)
    if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[1], str)):
        raise SpecError(f"missing component '{name}' ([library, class])", Location(str(index_path), None, name))
    path = folder / name / "config.json"
    if not path.is_file():
        raise SpecError(f"component '{name}' has no {name}/config.json", Location(str(index_path), None, name))
    return read_config(path, entry[1])


def guidance(out: str) -> list:
    """pred = pred_u + s (pred_c - pred_u) (negative half first), then the sampler's update of the latents."""
    return [op("pred_uncond", "slice", out, axis=0, start=0, stop="batch", when="cfg"),
            op("pred_cond", "slice", out, axis=0, start="batch", stop="2 * batch", when="cfg"),
            op("guidance_diff", "sub", ["pred_cond", "pred_uncond"], when="cfg"),
            op("guidance_scale", "scale", "guidance_diff", when="cfg"),
            op("guided", "add", ["pred_uncond", "guidance_scale"], when="cfg")]


def sampler(pred: str) -> list:
    return [op("sampler_scale", "scale", pred), op("sampler_update", "add", ["latents", "sampler_scale"])]


class Builder:
    """Collects stages and blocks; each stage's blocks are renamed where two stages use one name differently."""

    def __init__(self):
        self.stages, self.blocks = [], {}

    def add(self, stage: dict, part: Part, always: tuple = ()) -> None:
        """Blocks keep their names unless another stage already has a different block of that name (or the name
        is in `always`): then they take the stage's name as a prefix (text_encoder_2's Layer: TextEncoder2Layer)."""
        prefix = stage["name"].title().replace("_", "")
        renames = {}
        for name, spec in part.blocks.items():
            if name in always or (name in self.blocks and self.blocks[name] != spec):
                renames[name] = f"{prefix}{name}"
            self.blocks.setdefault(renames.get(name, name), spec)
        if renames:
            def rename(items):
                for item in items:
                    if item.get("block") in renames:
                        item["block"] = renames[item["block"]]
            rename(stage["ops"])
            for spec in part.blocks.values():
                rename(spec["ops"])
        self.stages.append(stage)


def text_encoder(name: str, config: Config, batch: str, tokens: int | None = None) -> tuple[dict, Part]:
    part = builders()[config.cls](config)
    bind = {"B": batch} | ({"text_tokens": tokens} if tokens else {})
    stage = {"name": name, "description": f"{config.cls} on the prompt" + (" (and the negative prompt when cfg is on)"
                                                                          if "cfg" in batch else ""),
             "bind": bind, "inputs": part.facts["main_input"] | part.inputs, "ops": part.ops}
    return stage, part


def pipeline(index_path: Path) -> dict:
    index, _ = read_json(index_path)
    cls = index.get("_class_name")
    from .video_pipelines import ASSEMBLERS
    known = list(PIPELINES) + list(ASSEMBLERS)
    if cls not in known:
        raise SpecError(f"{unknown('pipeline class', cls, known)}; supported: {', '.join(known)}",
                        Location(str(index_path), None, "_class_name"))
    folder = index_path.parent

    def part_of(name: str) -> Config:
        return component(folder, index, name, index_path)

    if cls in ASSEMBLERS:   # the 2025 pipelines, each with its own order of calls
        return ASSEMBLERS[cls](cls, folder, part_of, Builder())
    defaults = PIPELINES[cls]

    denoiser_name = "unet" if "unet" in index else "transformer"
    net, vae = part_of(denoiser_name), part_of("vae")
    decoder = builders()[vae.cls](vae)
    f = decoder.facts["factor"]
    video = cls == "TextToVideoSDPipeline"
    io = {"sample": "latent"} | ({"h": f"height / {f}", "w": f"width / {f}"} if denoiser_name == "unet" else {"f": f})
    denoiser = builders()[net.cls](net, **io)
    if denoiser.facts["channels"] != decoder.facts["latent_channels"] * (4 if denoiser.facts.get("packed") else 1):
        raise net.error("in_channels", f"{denoiser.facts['channels']} channels do not fit the VAE's "
                                       f"latent_channels {decoder.facts['latent_channels']}")
    cfg_batch = "batch * (1 + cfg)"
    out = Builder()
    texts = []
    names = [n for n in ("text_encoder", "text_encoder_2", "text_encoder_3") if n in index and index[n][1]]
    for name in names:
        config = part_of(name)
        # SDXL: no negative prompt -> zero embeddings (force_zeros_for_empty_prompt), the encoders see the prompt only
        batch = "batch" if cls == "StableDiffusionXLPipeline" and index.get("force_zeros_for_empty_prompt", True) \
            else cfg_batch
        clip = config.cls.startswith("CLIP")
        tokens = CLIP_TOKENS if clip and cls in ("StableDiffusion3Pipeline", "FluxPipeline") else None
        stage, part = text_encoder(name, config, batch, tokens)
        if cls == "FluxPipeline" and clip:   # pooler_output: the end-of-text token's final hidden state
            stage["ops"] += [op("eos_token", "slice", "final_layer_norm", axis=1, start=CLIP_TOKENS - 1,
                                stop=CLIP_TOKENS), op("pooled", "reshape", "eos_token", shape=["d0", "d2"])]
        texts.append((stage, part, config))
    if cls == "StableDiffusion3Pipeline":
        sd3_context(texts, net)
    for stage, part, config in texts:
        out.add(stage, part, always=("Layer",))
    check_context(cls, texts, denoiser, net)

    inputs = {"latents": {"shape": ["batch"] + denoiser.facts["main_input"]["latent"]["shape"][1:]}} | denoiser.inputs
    if cls == "StableDiffusion3Pipeline":
        inputs["context"] = {"shape": ["B", f"{CLIP_TOKENS} + text_tokens", denoiser.facts["context_dim"]]}
    ops = [op("latent", "concat", ["latents", "latents"], axis=0, when="cfg")] + denoiser.ops
    pred = denoiser.out
    ops += guidance(pred)
    if denoiser.facts.get("out_channels", 0) == 2 * denoiser.facts["channels"]:
        # learned sigma (DiT, PixArt): the first half of the channels is the noise the sampler uses
        ops.append(op("eps", "slice", "guided", axis=1, start=0, stop=denoiser.facts["channels"]))
        ops += sampler("eps")
    else:
        ops += sampler("guided")
    out.add({"name": "denoiser", "description": f"{net.cls}, one evaluation per step on the conditional and "
             "unconditional batch", "repeat": "steps", "bind": {"B": cfg_batch} | denoiser.facts.get("bind", {}),
             "inputs": inputs, "ops": ops}, denoiser)

    decode_inputs, decode_ops = dict(decoder.facts["main_input"]), list(decoder.ops)
    if video:   # the SD VAE decodes every frame: [B, C, F, h, w] -> [B*F, C, h, w]
        latent = decode_inputs["latents"]["shape"]
        decode_inputs = {"latents": {"shape": [latent[0], latent[1], "frames", latent[2], latent[3]]}}
        decode_ops[1:1] = [op("frames_first", "transpose", "unscale", perm=[0, 2, 1, 3, 4]),
                           op("images", "reshape", "frames_first", shape=["d0 * d1", "d2", "d3", "d4"])]
        decode_ops[3]["in"] = "images"
    if denoiser.facts.get("packed"):   # FluxPipeline._unpack_latents: [B, T, 4C] -> [B, C, h, w]
        c = decoder.facts["latent_channels"]
        decode_inputs = {"latents": {"shape": ["B", f"(height / {2 * f}) * (width / {2 * f})", 4 * c]}}
        decode_ops = [op("unpack_view", "reshape", "latents", shape=["d0", f"height / {2 * f}", f"width / {2 * f}",
                                                                     c, 2, 2]),
                      op("unpack_permute", "transpose", "unpack_view", perm=[0, 3, 1, 4, 2, 5]),
                      op("unpacked", "reshape", "unpack_permute", shape=["d0", c, f"height / {f}", f"width / {f}"]),
                      dict(decode_ops[0], **{"in": "unpacked"})] + decode_ops[1:]
    xl = cls == "StableDiffusionXLPipeline"
    out.add({"name": "decoder", "description": f"{vae.cls} decoder from the latent to RGB pixels",
             "bind": {"B": "batch"} | ({"dtype": "decoder_dtype"} if xl else {}),
             "tiling": decoder.facts["tiling"], "inputs": decode_inputs, "ops": decode_ops}, decoder)

    size = denoiser.facts["sample_size"] * f
    params = {"batch": {"default": 1, "min": 1, "help": ("videos" if video else "images") +
                        " generated together (batch size)"},
              "height": {"default": size, "min": 1, "help": "output height in pixels"},
              "width": {"default": size, "min": 1, "help": "output width in pixels"}}
    if video:
        params["frames"] = denoiser.facts["params"]["frames"]
    params |= {"steps": {"default": defaults.steps, "min": 1,
                         "help": "sampling steps of the main generator (one model evaluation each)"},
               "cfg": {"default": defaults.cfg, "type": "bool", "help": "switches classifier-free guidance on or "
                       "off; the guidance scale does not change the cost"}}
    if texts:
        tokens = defaults.text_tokens or texts[0][1].facts["max_tokens"]
        params["text_tokens"] = {"default": tokens, "min": 1, "help": "text encoder sequence length in tokens"}
    params["dtype"] = dtype_param(defaults.dtype)
    if xl:
        # the pipeline decodes an fp16 VAE in fp32 when vae.config.force_upcast is set
        params["decoder_dtype"] = dtype_param("fp32" if decoder.facts["force_upcast"] else "fp16",
                                              "data type of the image decoder")
    encoders = ", ".join(c.cls for _, _, c in texts)
    return model_file(net, f"{cls} ({folder.name})", denoiser.facts.get("family", "diffusion-tti"), params,
                      out.blocks, out.stages, f"{cls}: {encoders + ', ' if encoders else ''}{net.cls} run `steps` "
                      f"times with classifier-free guidance, {vae.cls} decoder", folder)


def check_context(cls: str, texts: list, denoiser: Part, net: Config) -> None:
    """The text features the pipeline hands the denoiser must be as wide as it expects."""
    if not texts:
        return
    if cls == "StableDiffusionXLPipeline":   # [penultimate ViT-L | penultimate bigG], pooled bigG
        width = sum(p.facts["hidden"] for _, p, _ in texts)
        if denoiser.facts.get("text_embeds_dim") != texts[-1][1].facts.get("pooled_dim"):
            raise net.error("projection_class_embeddings_input_dim", "does not match text_encoder_2's "
                            "projection_dim + 6 x addition_time_embed_dim")
    elif cls in ("StableDiffusion3Pipeline", "FluxPipeline"):
        width = texts[-1][1].facts["hidden"]   # the T5 stream; CLIP is padded (SD3) or pooled (Flux)
    else:
        width = texts[0][1].facts["hidden"]
    key = "cross_attention_dim" if "cross_attention_dim" in net.data else (
        "caption_channels" if "caption_channels" in net.data else (
            "joint_attention_dim" if "joint_attention_dim" in net.data else "text_embed_dim"))
    if width != denoiser.facts["context_dim"]:
        raise net.error(key, f"{denoiser.facts['context_dim']}, but the text encoders give {width} features")


def sd3_context(texts: list, net: Config) -> None:
    """StableDiffusion3Pipeline.encode_prompt: CLIP-L and CLIP-G penultimate states concatenated on channels,
    zero-padded to the T5 width, concatenated with T5 on tokens; pooled = [CLIP-L pooled | CLIP-G pooled]."""
    if len(texts) != 3:
        raise SpecError("StableDiffusion3Pipeline needs text_encoder, text_encoder_2 and text_encoder_3")
    (_, l_part, _), (_, g_part, _), (t5_stage, t5_part, _) = texts
    dl, dg, dt = l_part.facts["hidden"], g_part.facts["hidden"], t5_part.facts["hidden"]
    if dt < dl + dg:
        raise net.error("joint_attention_dim", f"the T5 width {dt} is narrower than the two CLIP widths {dl + dg}")
    pooled = l_part.facts.get("pooled_dim", 0) + g_part.facts.get("pooled_dim", 0)
    if pooled != net.get("pooled_projection_dim"):
        raise net.error("pooled_projection_dim", f"{net.get('pooled_projection_dim')}, but the CLIP encoders' "
                                                 f"projections give {pooled}")
    t5_stage["inputs"] |= {"clip_l_hidden": {"shape": ["B", CLIP_TOKENS, dl]},
                           "clip_l_pooled": {"shape": ["B", l_part.facts["pooled_dim"]]},
                           "clip_g_hidden": {"shape": ["B", CLIP_TOKENS, dg]},
                           "clip_g_pooled": {"shape": ["B", g_part.facts["pooled_dim"]]}}
    t5_stage["ops"] += [op("clip_hidden", "concat", ["clip_l_hidden", "clip_g_hidden"], axis=-1),
                        parameter("zero_pad", ["B", CLIP_TOKENS, dt - dl - dg], learned=False),
                        op("clip_padded", "concat", ["clip_hidden", "zero_pad"], axis=-1),
                        op("context", "concat", ["clip_padded", t5_part.out], axis=1),
                        op("pooled", "concat", ["clip_l_pooled", "clip_g_pooled"], axis=-1)]
