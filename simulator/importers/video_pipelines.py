"""The 2025 diffusers pipelines as the built-in models run them: each pipeline class has its own order of calls
(WanPipeline calls the transformer once per CFG pass; the others batch both passes), so each has an assembler
here that lays out its stages as the built-in file of that pipeline does (models/wan21-1.3b.yaml, ...)."""
from __future__ import annotations

from ..importer import Config, Part, builders, dtype_param, model_file, op
from .pipelines import guidance, sampler


def _text_stage(config: Config, description: str, **extra) -> tuple[dict, Part]:
    part = builders()[config.cls](config)
    return ({"name": "text_encoder", "description": description, **extra,
             "inputs": part.facts["main_input"] | part.inputs, "ops": part.ops}, part)


def _check_width(net: Config, key: str, want: int, have: int, what: str) -> None:
    if want != have:
        raise net.error(key, f"{want}, but {what} gives {have}")


def decoder_stage(vae: Config, decoder: Part) -> dict:
    """The VAE decoder's stage, called as its decode() calls it (`repeat`/`iteration` where it loops over latent
    frames)."""
    stage = {"name": "decoder", "description": f"{vae.cls} decoder from the latents to frames of RGB pixels"}
    stage |= {k: decoder.facts[k] for k in ("repeat", "iteration") if k in decoder.facts}
    stage |= {"bind": {"B": "batch"} | decoder.facts.get("bind", {})}
    if "tiling" in decoder.facts:   # AutoencoderKLCogVideoX's pipeline does not tile (models/cogvideox-2b.yaml)
        stage["tiling"] = decoder.facts["tiling"]
    return stage | {"inputs": decoder.facts["main_input"] | decoder.inputs, "ops": decoder.ops}


def wan(cls: str, folder, part_of, out) -> dict:
    """WanPipeline (diffusers 0.42 pipeline_wan.py): umT5 on the prompt and, with guidance, on the negative prompt
    (two calls); per step the transformer on the conditional and then the unconditional latents (two calls of the
    video batch), CFG and the UniPC update; AutoencoderKLWan decodes once."""
    net, vae, text = part_of("transformer"), part_of("vae"), part_of("text_encoder")
    decoder = builders()[vae.cls](vae)
    f, temporal = decoder.facts["factor"], decoder.facts["temporal"]
    denoiser = builders()[net.cls](net, sample="latents", f=f)
    _check_width(net, "in_channels", denoiser.facts["channels"], decoder.facts["latent_channels"],
                 "the VAE's z_dim")
    stage, encoder = _text_stage(text, f"{text.cls}, called on the prompt and (with cfg) on the negative prompt",
                                 repeat="1 + cfg", bind={"B": "batch"})
    _check_width(net, "text_dim", denoiser.facts["context_dim"], encoder.facts["hidden"], "the text encoder")
    out.add(stage, encoder, always=("Layer",))
    frames_bind = {"T": f"(frames - 1) / {temporal} + 1"}
    latent = ["batch", denoiser.facts["channels"], "T", f"height / {f}", f"width / {f}"]
    out.add({"name": "denoiser", "description": f"{net.cls}, once on the prompt and once on the negative prompt "
             "per step (batch = videos, not doubled)", "repeat": "steps * (1 + cfg)",
             "bind": {"B": "batch"} | frames_bind, "inputs": denoiser.facts["main_input"] | denoiser.inputs,
             "ops": denoiser.ops}, denoiser)
    out.add({"name": "guidance", "description": "classifier-free guidance on the two passes' predictions and the "
             "sampler's update, once per step", "repeat": "steps", "bind": frames_bind,
             "inputs": {n: {"shape": latent} for n in ("latents", "pred_cond", "pred_uncond")},
             "ops": [op("guidance_diff", "sub", ["pred_cond", "pred_uncond"], when="cfg"),
                     op("guidance_scale", "scale", "guidance_diff", when="cfg"),
                     op("guidance", "add", ["pred_uncond", "guidance_scale"], when="cfg"),
                     op("sampler_scale", "scale", "guidance"),
                     op("sampler_update", "add", ["latents", "sampler_scale"])]}, Part({}, {}, [], ""))
    # WanPipeline's docstring example loads the VAE in float32 (torch_dtype=torch.float32), as the Wan repository does
    stage = decoder_stage(vae, decoder)
    stage["bind"] |= {"dtype": "decoder_dtype"}
    out.add(stage, decoder)
    params = {"batch": {"default": 1, "min": 1, "help": "videos generated together (batch size)"}}
    params |= {k: denoiser.facts["params"][k] for k in ("height", "width", "frames")}
    # WanPipeline.__call__: num_inference_steps 50, guidance_scale 5.0 (> 1: CFG on), max_sequence_length 512;
    # the model cards load the transformer and text encoder in bfloat16
    params |= {"steps": {"default": 50, "min": 1, "help": "sampling steps (one transformer call per CFG pass)"},
               "cfg": {"default": True, "type": "bool", "help": "switches classifier-free guidance on or off; the "
                       "guidance scale does not change the cost"},
               "text_tokens": denoiser.facts["params"]["text_tokens"], "dtype": dtype_param("bf16"),
               "decoder_dtype": dtype_param("fp32", "data type of the video decoder")}
    return model_file(net, f"{cls} ({folder.name})", "ttv", params, out.blocks, out.stages,
                      f"{cls}: {text.cls}, {net.cls} run twice per step (conditional and unconditional pass), "
                      f"{vae.cls} decoder", folder)


def qwen_image(cls: str, folder, part_of, out) -> dict:
    """QwenImagePipeline (diffusers 0.42 pipeline_qwenimage.py): Qwen2.5-VL's language model on the chat template +
    prompt (and the negative prompt with CFG), its last hidden state without the template prefix; per step the
    MMDiT on the conditional and unconditional batch together, then guidance with the norm rescale
    (`comb_pred * cond_norm / noise_norm`) and the Euler update; the VAE decodes the unpacked latents as one
    frame."""
    net, vae, text = part_of("transformer"), part_of("vae"), part_of("text_encoder")
    decoder = builders()[vae.cls](vae)
    f = decoder.facts["factor"]
    denoiser = builders()[net.cls](net, sample="latent", f=f)
    c = decoder.facts["latent_channels"]
    _check_width(net, "in_channels", denoiser.facts["channels"], 4 * c, "4 x the VAE's z_dim (2 x 2 packing)")
    cfg_batch = "batch * (1 + cfg)"
    stage, encoder = _text_stage(text, f"{text.cls} language model on the chat template + prompt, prompt and "
                                 "(with cfg) negative prompt; last hidden state, template prefix dropped",
                                 bind={"B": cfg_batch})
    stage["bind"] |= encoder.facts.get("bind", {})   # the template + prompt length
    _check_width(net, "joint_attention_dim", denoiser.facts["context_dim"], encoder.facts["hidden"],
                 "the text encoder")
    out.add(stage, encoder, always=("Layer",))
    latent_in = denoiser.facts["main_input"]["latent"]["shape"]
    ops = [op("latent", "concat", ["latents", "latents"], axis=0, when="cfg")] + denoiser.ops + [
        op("v_uncond", "slice", denoiser.out, axis=0, start="batch", stop="2 * batch", when="cfg"),
        op("v_cond", "slice", denoiser.out, axis=0, start=0, stop="batch", when="cfg"),
        op("guidance_diff", "sub", ["v_cond", "v_uncond"], when="cfg"),
        op("guidance_scale", "scale", "guidance_diff", when="cfg"),
        op("guided", "add", ["v_uncond", "guidance_scale"], when="cfg"),
        # true_cfg rescale: the guided prediction scaled to the conditional one's norm
        op("cond_norm", "reduce", "v_cond", axis=-1, keepdim=True, mode="sum", when="cfg"),
        op("guided_norm", "reduce", "guided", axis=-1, keepdim=True, mode="sum", when="cfg"),
        op("norm_ratio", "div", ["cond_norm", "guided_norm"], when="cfg"),
        op("rescaled", "mul", ["guided", "norm_ratio"], when="cfg"),
        op("sampler_scale", "scale", "rescaled"), op("sampler_update", "add", ["latents", "sampler_scale"])]
    out.add({"name": "denoiser", "description": f"{net.cls}, one evaluation per step on the prompt and the negative "
             "prompt", "repeat": "steps", "bind": {"B": cfg_batch} | denoiser.facts["bind"],
             "inputs": {"latents": {"shape": ["batch"] + latent_in[1:]}} | denoiser.inputs, "ops": ops}, denoiser)
    g = 2 * f   # QwenImagePipeline._unpack_latents: [B, (H/2f)(W/2f), 4C] -> [B, C, 1, H/f, W/f]
    stage = decoder_stage(vae, decoder)
    del stage["tiling"]   # as models/qwen-image.yaml (the pipeline does not tile)
    stage["inputs"] = {"latents": {"shape": ["batch", f"(height / {g}) * (width / {g})", 4 * c]}}
    stage["ops"] = [op("unpack_view", "reshape", "latents", shape=["d0", f"height / {g}", f"width / {g}", c, 2, 2]),
                    op("unpack_permute", "transpose", "unpack_view", perm=[0, 3, 1, 4, 2, 5]),
                    op("unpacked", "reshape", "unpack_permute", shape=["d0", c, 1, f"height / {f}", f"width / {f}"]),
                    dict(decoder.ops[0], **{"in": "unpacked"})] + decoder.ops[1:]
    out.add(stage, decoder)
    params = {"batch": {"default": 1, "min": 1, "help": "images generated together (batch size)"}}
    params |= {k: denoiser.facts["params"][k] for k in ("height", "width")}
    # QwenImagePipeline.__call__: num_inference_steps 50, true_cfg_scale 4.0 with a negative prompt (CFG on);
    # the model card loads it in bfloat16
    params |= {"steps": {"default": 50, "min": 1, "help": "sampling steps (one model evaluation each)"},
               "cfg": {"default": True, "type": "bool", "help": "switches classifier-free guidance on or off; the "
                       "guidance scale does not change the cost"},
               "text_tokens": encoder.facts["params"]["text_tokens"], "dtype": dtype_param("bf16")}
    return model_file(net, f"{cls} ({folder.name})", "diffusion-tti", params, out.blocks, out.stages,
                      f"{cls}: {text.cls} (language model only), {net.cls} run `steps` times with classifier-free "
                      f"guidance, {vae.cls} decoder", folder)


def batched_cfg_denoiser(denoiser: Part, description: str) -> dict:
    """The denoiser stage of a pipeline that runs the negative and the positive prompt as one batch
    (`torch.cat([latents] * 2)`), then guidance (negative half first) and the sampler's update."""
    latent_in = denoiser.facts["main_input"]
    (name, spec), = latent_in.items()
    ops = [op(name, "concat", ["latents", "latents"], axis=0, when="cfg")] + denoiser.ops + guidance(denoiser.out)
    return {"name": "denoiser", "description": description, "repeat": "steps",
            "bind": {"B": "batch * (1 + cfg)"} | denoiser.facts["bind"],
            "inputs": {"latents": {"shape": ["batch"] + spec["shape"][1:]}} | denoiser.inputs,
            "ops": ops + sampler("guided")}


def video_params(denoiser: Part, steps: int, dtype: str, cfg: bool = True) -> dict:
    """A text-to-video pipeline's workload: size, frames and text tokens from its transformer, the rest from its
    __call__ defaults."""
    params = {"batch": {"default": 1, "min": 1, "help": "videos generated together (batch size)"}}
    params |= {k: denoiser.facts["params"][k] for k in ("height", "width", "frames")}
    return params | {"steps": {"default": steps, "min": 1, "help": "sampling steps of the main generator (one model "
                                                                    "evaluation each)"},
                     "cfg": {"default": cfg, "type": "bool", "help": "switches classifier-free guidance on or off; "
                             "the guidance scale does not change the cost"},
                     "text_tokens": denoiser.facts["params"]["text_tokens"], "dtype": dtype_param(dtype)}


def cogvideox(cls: str, folder, part_of, out) -> dict:
    """CogVideoXPipeline (diffusers 0.42 pipeline_cogvideox.py): T5 on the prompt and negative prompt as one batch
    (max_sequence_length 226), per step the transformer on both (`torch.cat([latents] * 2)`), CFG and the DDIM
    update; AutoencoderKLCogVideoX decodes in batches of two latent frames (no tiling by default)."""
    net, vae, text = part_of("transformer"), part_of("vae"), part_of("text_encoder")
    decoder = builders()[vae.cls](vae)
    f = decoder.facts["factor"]
    denoiser = builders()[net.cls](net, sample="latent", f=f)
    _check_width(net, "in_channels", denoiser.facts["channels"], decoder.facts["latent_channels"],
                 "the VAE's latent_channels")
    _check_width(net, "temporal_compression_ratio", net.int("temporal_compression_ratio"),
                 decoder.facts["temporal"], "the VAE")
    stage, encoder = _text_stage(text, f"{text.cls} on the prompt and (with cfg) the negative prompt",
                                 bind={"B": "batch * (1 + cfg)"})
    _check_width(net, "text_embed_dim", denoiser.facts["context_dim"], encoder.facts["hidden"], "the text encoder")
    out.add(stage, encoder, always=("Layer",))
    out.add(batched_cfg_denoiser(denoiser, f"{net.cls} on text + video tokens, one evaluation per step on the "
                                                "conditional and unconditional batch"), denoiser)
    out.add(decoder_stage(vae, decoder), decoder)
    # CogVideoXPipeline.__call__: num_inference_steps 50, guidance_scale 6 (> 1: CFG on), max_sequence_length 226
    # (the transformer's max_text_seq_length); its docstring example loads CogVideoX-2b in float16 (the 5B model
    # card uses bfloat16: --set dtype=bf16)
    params = video_params(denoiser, 50, "fp16")
    return model_file(net, f"{cls} ({folder.name})", "ttv", params, out.blocks, out.stages,
                      f"{cls}: {text.cls}, {net.cls} run `steps` times with classifier-free guidance, {vae.cls} "
                      "decoder", folder)


def _t5_cfg_batch_video(cls: str, folder, part_of, out, context_key: str, tokens: str, steps: int) -> dict:
    """The LTX and Mochi pipelines' common shape: T5 on the prompt and (with cfg) on the negative prompt, per step
    the transformer on the unconditional + conditional latents as one batch, CFG and the Euler update, the VAE
    decoding in one pass. `context_key` names the transformer's text-width field, `tokens` what it attends over
    ({f}: the VAE's spatial factor).
    Both pipelines' docstring examples load them in bfloat16."""
    net, vae, text = part_of("transformer"), part_of("vae"), part_of("text_encoder")
    decoder = builders()[vae.cls](vae)
    denoiser = builders()[net.cls](net, sample="latent", f=decoder.facts["factor"], t=decoder.facts["temporal"])
    _check_width(net, "in_channels", denoiser.facts["channels"], decoder.facts["latent_channels"],
                 "the VAE's latent_channels")
    stage, encoder = _text_stage(text, f"{text.cls}, called on the prompt and (with cfg) on the negative prompt",
                                 repeat="1 + cfg", bind={"B": "batch"})
    _check_width(net, context_key, denoiser.facts["context_dim"], encoder.facts["hidden"], "the text encoder")
    out.add(stage, encoder, always=("Layer",))
    tokens = tokens.format(f=decoder.facts["factor"])
    out.add(batched_cfg_denoiser(denoiser, f"{net.cls} on {tokens}, one evaluation per step on the unconditional "
                                           "+ conditional batch"), denoiser)
    out.add(decoder_stage(vae, decoder), decoder)
    return model_file(net, f"{cls} ({folder.name})", "ttv", video_params(denoiser, steps, "bf16"), out.blocks,
                      out.stages, f"{cls}: {text.cls}, {net.cls} run `steps` times with classifier-free guidance, "
                      f"{vae.cls} decoder", folder)


def ltx(cls: str, folder, part_of, out) -> dict:
    """LTXPipeline (diffusers 0.42 pipeline_ltx.py): T5 with max_sequence_length 128, the packed latents of both
    prompts (`torch.cat([latents] * 2)`); AutoencoderKLLTXVideo decodes the unpacked latents in one pass.
    LTXPipeline.__call__: num_inference_steps 50, guidance_scale 3 (> 1: CFG on)."""
    return _t5_cfg_batch_video(cls, folder, part_of, out, "caption_channels", "T*(H/{f})*(W/{f}) tokens", 50)


def mochi(cls: str, folder, part_of, out) -> dict:
    """MochiPipeline (diffusers 0.42 pipeline_mochi.py): T5 with max_sequence_length 256; AutoencoderKLMochi decodes
    the de-normalised latents in one pass. MochiPipeline.__call__: num_inference_steps 64, guidance_scale 4.5
    (> 1: CFG on), num_frames 19."""
    return _t5_cfg_batch_video(cls, folder, part_of, out, "text_embed_dim", "the video tokens + the text tokens", 64)


# HunyuanVideoPipeline (diffusers 0.42 pipeline_hunyuan_video.py): DEFAULT_PROMPT_TEMPLATE's crop_start, the template
# tokens before the prompt that the Llama encoder runs and the pipeline then drops; the CLIP prompt's
# max_sequence_length 77
HUNYUAN_TEMPLATE_TOKENS, HUNYUAN_CLIP_TOKENS = 95, 77


def hunyuan_video(cls: str, folder, part_of, out) -> dict:
    """HunyuanVideoPipeline: the Llama encoder on the template + prompt (its hidden_states[-3], every layer runs;
    the template prefix cropped), CLIP's pooled output; per step the guidance-distilled transformer (true CFG off
    by default: true_cfg_scale 1.0), the Euler update; AutoencoderKLHunyuanVideo decodes frame-wise."""
    net, vae = part_of("transformer"), part_of("vae")
    llm, clip = part_of("text_encoder"), part_of("text_encoder_2")
    decoder = builders()[vae.cls](vae)
    denoiser = builders()[net.cls](net, sample="latent", f=decoder.facts["factor"], t=decoder.facts["temporal"])
    _check_width(net, "in_channels", denoiser.facts["channels"], decoder.facts["latent_channels"],
                 "the VAE's latent_channels")
    cfg_batch = "batch * (1 + cfg)"
    stage, encoder = _text_stage(llm, f"{llm.cls} on the prompt template + prompt ({HUNYUAN_TEMPLATE_TOKENS} + "
                                 "text_tokens tokens); the hidden states of the third-last layer, template prefix "
                                 "cropped", bind={"B": cfg_batch, "L": f"{HUNYUAN_TEMPLATE_TOKENS} + text_tokens"})
    stage["inputs"]["tokens"] = {"shape": ["B", "L"], "dtype": "int64"}
    layers = next(o["name"] for o in encoder.ops if o.get("block") == "Layer")
    stage["ops"].append(op("prompt_embeds", "slice", layers, axis=1, start=HUNYUAN_TEMPLATE_TOKENS, stop="L"))
    _check_width(net, "text_embed_dim", denoiser.facts["context_dim"], encoder.facts["hidden"], "the text encoder")
    out.add(stage, encoder, always=("Layer",))
    pooled = builders()[clip.cls](clip)
    if clip.cls != "CLIPTextModel":
        raise clip.error(None, f"{clip.cls}: HunyuanVideoPipeline's text_encoder_2 is a CLIPTextModel")
    _check_width(net, "pooled_projection_dim", net.int("pooled_projection_dim"), pooled.facts["hidden"],
                 "text_encoder_2 (its pooled output)")
    t = HUNYUAN_CLIP_TOKENS
    out.add({"name": "text_encoder_2", "description": f"{clip.cls}; only the pooled end-of-text embedding is used",
             "bind": {"B": cfg_batch, "text_tokens": t}, "inputs": pooled.facts["main_input"] | pooled.inputs,
             "ops": pooled.ops + [op("eos_token", "slice", "final_layer_norm", axis=1, start=t - 1, stop=t),
                                  op("pooled", "reshape", "eos_token", shape=["d0", "d2"])]}, pooled,
            always=("Layer",))
    out.add(batched_cfg_denoiser(denoiser, f"{net.cls} on the video + text tokens, one evaluation per "
                                                "flow-matching step (guidance embedded)"), denoiser)
    out.add(decoder_stage(vae, decoder), decoder)
    # HunyuanVideoPipeline.__call__: num_inference_steps 50, true_cfg_scale 1.0 (no negative batch: the guidance
    # scale is embedded); its docstring example loads the transformer in bfloat16
    params = video_params(denoiser, 50, "bf16", cfg=False)
    return model_file(net, f"{cls} ({folder.name})", "ttv", params, out.blocks, out.stages,
                      f"{cls}: {llm.cls} + {clip.cls}, {net.cls} run `steps` times (guidance embedded), {vae.cls} "
                      "decoder", folder)


ASSEMBLERS = {"CogVideoXPipeline": cogvideox, "HunyuanVideoPipeline": hunyuan_video, "LTXPipeline": ltx,
              "MochiPipeline": mochi, "QwenImagePipeline": qwen_image, "WanPipeline": wan}
