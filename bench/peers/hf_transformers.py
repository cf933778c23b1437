#!/usr/bin/env python3
"""HF transformers on a random-weight Pixtral-12B-shaped model (bf16, one GPU): the figures that
bench/cuda/cuda_bench measures for pixtral.cpp, so the two can be compared in one run, and a
batched generate of the serving load's shape (64 × 512 in / 256 out; pixtral_load's text64).

Prints one line per figure and a final JSON line `HF_RESULTS {...}`. Timing: CUDA synchronize
around each call, median of repeats after a warm-up. Eager attention (transformers' default for
this model class on one GPU), dynamic cache, greedy.
Usage: python3 bench/peers/hf_transformers.py
"""
import json
import statistics
import time

import torch
import transformers
from transformers import LlavaConfig, LlavaForConditionalGeneration, MistralConfig, PixtralVisionConfig


def build_model():
    vc = PixtralVisionConfig(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                             image_size=1024, patch_size=16, rope_theta=10000.0, head_dim=64, num_channels=3,
                             hidden_act="silu")
    tc = MistralConfig(hidden_size=5120, intermediate_size=14336, num_hidden_layers=40, num_attention_heads=32,
                       num_key_value_heads=8, head_dim=128, rope_theta=1e9, vocab_size=131072,
                       max_position_embeddings=131072, rms_norm_eps=1e-5, sliding_window=None)
    cfg = LlavaConfig(vision_config=vc, text_config=tc, image_token_index=10, projector_hidden_act="gelu",
                      vision_feature_layer=-1, vision_feature_select_strategy="full", multimodal_projector_bias=True)
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(cfg)
    model = model.to_empty(device="cuda").to(torch.bfloat16)
    torch.manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.normal_(0, 0.02)
            elif "norm" in name:
                p.fill_(1.0)
            else:
                p.normal_(0, 0.02)
    return model.eval()


def timed(fn, reps, warmup=1):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def image_prompt(text_tokens=20, side=1024, patch=16):
    n = side // patch
    img = ([10] * n + [12]) * n
    img[-1] = 13
    return [1, 3] + img + list(range(2000, 2000 + text_tokens)) + [4]


@torch.no_grad()
def main():
    print("torch", torch.__version__, "transformers", transformers.__version__, torch.cuda.get_device_name(0),
          flush=True)
    model = build_model()
    results = {}
    # Decode at 512 context: generate 128 tokens after a 512-token prompt, minus the prefill.
    ids = torch.randint(1000, 131072, (1, 512), device="cuda")
    prefill_512 = timed(lambda: model(input_ids=ids, logits_to_keep=1), 3)
    gen = timed(lambda: model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=128,
                                       min_new_tokens=128, do_sample=False), 2)
    results["decode_512_tok_s"] = 127 / (gen - prefill_512)
    print(f"decode batch 1, 512 context: {results['decode_512_tok_s']:.1f} tok/s", flush=True)
    # Prefill of 4,160 text tokens (the token count of one 1024x1024 image).
    ids = torch.randint(1000, 131072, (1, 4160), device="cuda")
    s = timed(lambda: model(input_ids=ids, logits_to_keep=1), 3)
    results["prefill_4160_tok_s"] = 4160 / s
    print(f"prefill 4160 tokens: {s * 1e3:.1f} ms = {4160 / s:.0f} tok/s", flush=True)
    # Vision encoder alone, and TTFT of one 1024x1024 image + 20 text tokens (GPU part).
    pix = torch.randn(1, 3, 1024, 1024, device="cuda", dtype=torch.bfloat16)
    sizes = torch.tensor([[1024, 1024]], device="cuda")
    tower = model.model.vision_tower if hasattr(model, "model") else model.vision_tower
    s = timed(lambda: tower(pix, image_sizes=sizes), 3)
    results["vision_ms"] = s * 1e3
    print(f"vision encoder, one 1024x1024 image: {s * 1e3:.1f} ms", flush=True)
    ids = torch.tensor([image_prompt()], device="cuda")
    s = timed(lambda: model(input_ids=ids, pixel_values=pix, image_sizes=sizes, logits_to_keep=1), 3)
    results["ttft_image_ms"] = s * 1e3
    print(f"TTFT one 1024x1024 image + 20 text tokens (GPU part): {s * 1e3:.1f} ms", flush=True)
    results["peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30
    # Batched generate (the serving load's shape): 64 prompts of 512 random tokens, 256 new
    # tokens each, greedy, one generate call: output tokens over the whole call (prefill included).
    ids = torch.randint(1000, 131072, (64, 512), device="cuda")
    s = timed(lambda: model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=256,
                                     min_new_tokens=256, do_sample=False), 1, warmup=0)
    results["batch64_512_256_out_tok_s"] = 64 * 256 / s
    print(f"generate batch 64, 512 in / 256 out: {s:.2f} s = {64 * 256 / s:.0f} output tok/s", flush=True)
    print("HF_RESULTS " + json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
