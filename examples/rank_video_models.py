"""Rank the built-in video models by seconds of video generated per second of compute on one device.

    python examples/rank_video_models.py --hardware h100
    python examples/rank_video_models.py --hardware b200 --set offload=model

Each model runs its reference pipeline's default workload (frames, size, steps, guidance); the video's length is
its frames over the frame rate its reference writes it at. A model whose frame rate no reference states is
listed as unranked rather than given a guessed one.
"""
import argparse

from simulator import run
from simulator.errors import SpecError
from simulator.graph import parse_value
from simulator.library import builtin_ids
from simulator.params import declared_params

# Frames per second each model's reference writes its videos at
FPS = {
    "wan21-1.3b": 16,    # diffusers WanPipeline example: export_to_video(output, "output.mp4", fps=16)
    "wan21-14b": 16,     # the same pipeline
    "ltx-video": 25,     # LTXPipeline.__call__ frame_rate=25 (the rate the model is conditioned on)
    "mochi-1": 30,       # genmo reference: 163 frames = 5.4 s at 30 fps (models/mochi-1.yaml)
    "hunyuanvideo": 24,  # Tencent/HunyuanVideo sample_video.py: save_videos_grid(sample, save_path, fps=24)
    "cogvideox-2b": 8,   # diffusers CogVideoXPipeline example: export_to_video(video, "output.mp4", fps=8)
    "cogvideox-5b": 8,   # the same pipeline
    "svd-xt": 7,         # StableVideoDiffusionPipeline.__call__ fps=7, and its example's export_to_video fps=7
    "phenaki": 8,        # models/phenaki.yaml: 128 x 128 video at 8 fps
}


def video_models() -> list:
    """Built-in models that generate video (family ttv, with a `frames` parameter)."""
    out = []
    for model_id in builtin_ids("models"):
        if "frames" in declared_params(model_id):
            out.append(model_id)
    return out


def rank(hardware: str, overrides: dict | None = None) -> tuple[list, list]:
    """(ranked rows, best first; unranked (model, why)) for one device."""
    rows, unranked = [], []
    for model_id in video_models():
        if model_id not in FPS:
            unranked.append((model_id, "no frame rate stated by its reference"))
            continue
        try:
            r = run(model_id, hardware, overrides=overrides)
        except SpecError as exc:
            unranked.append((model_id, exc.message))
            continue
        p = r.model.params
        video_s = p["frames"] / FPS[model_id]
        rows.append({"model": model_id, "frames": p["frames"], "size": f"{p.get('width')}x{p.get('height')}",
                     "fps": FPS[model_id], "video_s": video_s, "time_s": r.time_s,
                     "video_s_per_s": video_s / r.time_s, "fits": r.fits,
                     "peak_gib": r.peak_memory_bytes / 2**30})
    rows.sort(key=lambda row: -row["video_s_per_s"])
    return rows, unranked


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hardware", default="h100", help="device id or YAML file (default h100)")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a workload option every model takes, e.g. offload=model or vae_tiling=true")
    args = parser.parse_args(argv)
    overrides = {k: parse_value(v) for k, _, v in (s.partition("=") for s in args.set)}
    rows, unranked = rank(args.hardware, overrides)
    print(f"{'rank':>4s}  {'model':14s} {'frames':>6s} {'size':>9s} {'fps':>3s} {'video':>7s} {'compute':>9s} "
          f"{'video s / s':>11s} {'peak GiB':>8s} fits")
    for i, row in enumerate(rows, 1):
        print(f"{i:4d}  {row['model']:14s} {row['frames']:6d} {row['size']:>9s} {row['fps']:3d} "
              f"{row['video_s']:6.2f}s {row['time_s']:8.1f}s {row['video_s_per_s']:11.5f} {row['peak_gib']:8.1f} "
              f"{'yes' if row['fits'] else 'NO'}")
    for model_id, why in unranked:
        print(f"   -  {model_id:14s} unranked: {why}")


if __name__ == "__main__":
    main()
