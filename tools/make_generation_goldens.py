#!/usr/bin/env python3
"""Greedy-generation goldens: transformers' greedy continuation of golden cases.

For each listed case of tests/data/goldens, loads the case's tiny model from its `hf/` files,
runs `LlavaForConditionalGeneration.generate(do_sample=False)` for N new tokens (stopping at EOS
id 2 like any generation), and writes tests/data/goldens/generation.json with the new token ids
and the smallest top-1 margin seen on the path (a near-tie would make the comparison fragile).

Usage:  python tools/make_generation_goldens.py [--goldens tests/data/goldens]
Requirements: tools/requirements-tools.txt. Never edit the output by hand.
"""

import argparse
import json
from pathlib import Path

import torch
import transformers
from safetensors.torch import load_file
from transformers import LlavaForConditionalGeneration

CASES = [("gqa_f32_one_image", 24), ("gqa_f32_three_images", 24), ("gqa_bf16_one_image", 24),
         ("gqa_f32_text_only", 24)]
EOS = 2


def model_inputs(case_file):
    t = load_file(str(case_file))
    ids = t["input_ids"][None, :]
    images = [t[k] for k in sorted(k for k in t if k.startswith("image_"))]
    kw = {}
    if images:
        hm, wm = max(i.shape[1] for i in images), max(i.shape[2] for i in images)
        pix = torch.zeros(len(images), 3, hm, wm)  # padded batch; image_sizes crops the padding
        for n, im in enumerate(images):
            pix[n, :, : im.shape[1], : im.shape[2]] = im
        kw = dict(pixel_values=pix, image_sizes=torch.tensor([list(im.shape[1:]) for im in images]))
    return ids, kw


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--goldens", default="tests/data/goldens")
    args = ap.parse_args()
    root = Path(args.goldens)
    manifest = json.loads((root / "manifest.json").read_text())
    models = {m["name"]: m for m in manifest["models"]}
    cases = {c["case"]: c for c in manifest["cases"]}
    out = {"generator": "tools/make_generation_goldens.py", "torch": torch.__version__,
           "transformers": transformers.__version__, "eos_token_id": EOS, "cases": []}
    for name, max_new in CASES:
        case = cases[name]
        model = LlavaForConditionalGeneration.from_pretrained(
            root / models[case["model"]]["hf"], dtype=torch.float32, attn_implementation="eager").eval()
        ids, kw = model_inputs(root / case["file"])
        with torch.no_grad():
            gen = model.generate(input_ids=ids, **kw, max_new_tokens=max_new, do_sample=False,
                                 eos_token_id=EOS, pad_token_id=EOS, output_scores=True,
                                 return_dict_in_generate=True)
        new = gen.sequences[0, ids.shape[1]:].tolist()
        margins = []
        for s in gen.scores:
            top = torch.topk(s[0].float(), 2).values
            margins.append(float(top[0] - top[1]))
        out["cases"].append({"case": name, "max_new_tokens": max_new, "greedy_tokens": new,
                             "min_top1_margin": min(margins)})
        print(f"{name}: {len(new)} tokens, min margin {min(margins):.4g}")
    (root / "generation.json").write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
