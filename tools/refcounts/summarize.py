"""Collect headline numbers from results/*.json into results/summary.json and a markdown table."""
import json, os
R = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "results")
rows = []


def add(name, params, r, note=""):
    c = r["by_category"]
    rows.append(dict(network=name, params=params, conv_gflops=c["conv"] / 1e9, linear_gflops=c["linear"] / 1e9,
                     attention_gflops=c["attention"] / 1e9, other_gflops=c["other"] / 1e9,
                     total_gflops=r["total_flops"] / 1e9, conv=c["conv"], linear=c["linear"],
                     attention=c["attention"], note=note))


d = json.load(open(f"{R}/sd15.json"))
for k, v in d["text_encoder"]["flops"].items():
    add(f"sd15 text_encoder {k} x77", d["text_encoder"]["params"], v)
for k, v in d["unet"]["flops"].items():
    add(f"sd15 unet {k}", d["unet"]["params"], v)
pv = d["vae"]["params_decoder_plus_post_quant_conv"]
for k, v in d["vae"]["flops_decode"].items():
    add(f"sd15 vae.decode {k}", pv, v, "params = decoder + post_quant_conv")
for mid in ("llama2-7b", "llama2-70b", "llama3-8b"):
    d = json.load(open(f"{R}/{mid}.json"))
    for ph in ("prefill", "decode_step"):
        v = d[ph]
        add(f"{mid} {ph}" + (" 1x512" if ph == "prefill" else " 1 tok @512 past"), d["params"], v,
            f"lm_head {v['linear_split']['lm_head']/1e9:.6f} GF")
d = json.load(open(f"{R}/sdxl-unet.json"))
for k, v in d["flops"].items():
    add(f"sdxl unet {k}", d["params"], v)
d = json.load(open(f"{R}/dit-xl-2.json"))
for k, v in d["flops"].items():
    add(f"dit-xl-2 {k}", d["params"], v)
json.dump(rows, open(f"{R}/summary.json", "w"), indent=2)
print("| network | params | conv GF | linear GF | attention GF | total GF | note |")
print("|---|---:|---:|---:|---:|---:|---|")
for r in rows:
    print(f"| {r['network']} | {r['params']:,} | {r['conv_gflops']:.3f} | {r['linear_gflops']:.3f} | "
          f"{r['attention_gflops']:.3f} | {r['total_gflops']:.3f} | {r['note']} |")
