#!/usr/bin/env python3
"""Generate the reference goldens for pixtral.cpp: tiny random Pixtral models and their logits.

Reference: Hugging Face transformers `LlavaForConditionalGeneration` (fp32, eager attention).
Every case is cross-checked by an independent fp64 NumPy forward pass (`reference_logits` below)
that follows mistral-inference's math on the *mistral-layout* files, which proves that the
mistral-layout weights (names, q/k row order) and the HF-layout weights describe the same model.

Usage:  python tools/make_goldens.py [--out tests/data/goldens]
Requirements: tools/requirements-tools.txt (torch CPU, transformers 5.x, safetensors, numpy).
The outputs are deterministic (fixed seeds) and must never be edited by hand.
"""

import argparse
import json
import math
import shutil
from pathlib import Path

import numpy as np
import torch
import safetensors
from safetensors.torch import load_file
import transformers
from transformers import LlavaConfig, LlavaForConditionalGeneration, MistralConfig, PixtralVisionConfig

IMG, IMG_BREAK, IMG_END, BOS = 10, 12, 13, 1
TEXT_LO, VOCAB = 20, 512
REL_TOL = 1e-5

def save_file(tensors, path, metadata):
    """Byte-reproducible safetensors writer (the Rust writer orders __metadata__ keys randomly).

    Header: {"__metadata__": {...}, name: {dtype, shape, data_offsets}, ...} with tensors in sorted name
    order, space-padded to a multiple of 8 bytes; then the little-endian tensor data in the same order."""
    names = {torch.float32: "F32", torch.bfloat16: "BF16", torch.int64: "I64"}
    header, blobs, off = {"__metadata__": dict(metadata)}, [], 0
    for k in sorted(tensors):
        t = tensors[k].contiguous()
        raw = t.view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        header[k] = {"dtype": names[t.dtype], "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little") + h + b"".join(blobs))


# ----------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------

VISION = dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2,
              num_channels=3, image_size=128, patch_size=8, rope_theta=10000.0)

MODELS = {
    # name: (seed, dtype, text dims, vision dims, shard)
    "gqa_f32": dict(seed=1001, dtype="F32", shard=True,
                    text=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                              num_key_value_heads=2, head_dim=24, intermediate_size=96)),
    "mha_f32": dict(seed=2002, dtype="F32", shard=False,
                    text=dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=4,
                              num_key_value_heads=4, head_dim=12, intermediate_size=80)),
    "gqa_bf16": dict(seed=3003, dtype="BF16", shard=False,
                     text=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                               num_key_value_heads=2, head_dim=24, intermediate_size=96)),
}
TEXT_ROPE_THETA = 1e9
NORM_EPS = 1e-5
LM_HEAD_SCALE = 4.0  # output matrix std = 4/sqrt(dim): logits spread ~N(0,16), clear top-1 margins


def build_config(spec):
    t = spec["text"]
    text = MistralConfig(vocab_size=VOCAB, rms_norm_eps=NORM_EPS, sliding_window=None,
                         max_position_embeddings=4096, tie_word_embeddings=False, hidden_act="silu",
                         rope_parameters={"rope_type": "default", "rope_theta": TEXT_ROPE_THETA}, **t)
    v = VISION
    vision = PixtralVisionConfig(hidden_size=v["hidden_size"], intermediate_size=v["intermediate_size"],
                                 num_hidden_layers=v["num_hidden_layers"],
                                 num_attention_heads=v["num_attention_heads"],
                                 num_channels=v["num_channels"], image_size=v["image_size"],
                                 patch_size=v["patch_size"], hidden_act="silu",
                                 rope_parameters={"rope_type": "axial", "rope_theta": v["rope_theta"]})
    return LlavaConfig(text_config=text, vision_config=vision, image_token_index=IMG,
                       projector_hidden_act="gelu", multimodal_projector_bias=True,
                       vision_feature_layer=-1, vision_feature_select_strategy="full",
                       tie_word_embeddings=False)


@torch.no_grad()
def init_weights(model, seed, round_bf16):
    """Normal weights with std 1/sqrt(fan_in) so activations stay O(1); norms 1+0.1*randn; biases 0.1*randn."""
    g = torch.Generator().manual_seed(seed)
    for name, p in sorted(model.named_parameters()):
        r = torch.randn(p.shape, generator=g, dtype=torch.float32)
        if p.ndim == 1 and name.endswith(".bias"):
            val = 0.1 * r
        elif p.ndim == 1:  # RMSNorm gains
            val = 1.0 + 0.1 * r
        elif "embed_tokens" in name:
            val = r
        else:
            fan_in = int(np.prod(p.shape[1:]))
            val = r / math.sqrt(fan_in) * (LM_HEAD_SCALE if "lm_head" in name else 1.0)
        if round_bf16:
            val = val.to(torch.bfloat16).to(torch.float32)
        p.copy_(val)


# ----------------------------------------------------------------------------------------------
# HF -> mistral layout (spec model.md §1.4, §2.2, §2.3)
# ----------------------------------------------------------------------------------------------

def hf_legacy_name(name):
    """Normalize either HF spelling (new `model.language_model.*` or legacy `language_model.model.*`)."""
    for new, old in (("model.language_model.", "language_model.model."), ("lm_head.", "language_model.lm_head."),
                     ("model.vision_tower.", "vision_tower."),
                     ("model.multi_modal_projector.", "multi_modal_projector.")):
        if name.startswith(new):
            return old + name[len(new):]
    return name


def mistral_name(hf):
    n = hf_legacy_name(hf)
    fixed = {"language_model.model.embed_tokens.weight": "tok_embeddings.weight",
             "language_model.model.norm.weight": "norm.weight",
             "language_model.lm_head.weight": "output.weight",
             "vision_tower.patch_conv.weight": "vision_encoder.patch_conv.weight",
             "vision_tower.ln_pre.weight": "vision_encoder.ln_pre.weight",
             "multi_modal_projector.linear_1.weight": "vision_language_adapter.w_in.weight",
             "multi_modal_projector.linear_1.bias": "vision_language_adapter.w_in.bias",
             "multi_modal_projector.linear_2.weight": "vision_language_adapter.w_out.weight",
             "multi_modal_projector.linear_2.bias": "vision_language_adapter.w_out.bias"}
    if n in fixed:
        return fixed[n]
    sub = {"self_attn.q_proj": "attention.wq", "self_attn.k_proj": "attention.wk",
           "self_attn.v_proj": "attention.wv", "self_attn.o_proj": "attention.wo",
           "attention.q_proj": "attention.wq", "attention.k_proj": "attention.wk",
           "attention.v_proj": "attention.wv", "attention.o_proj": "attention.wo",
           "mlp.gate_proj": "feed_forward.w1", "mlp.down_proj": "feed_forward.w2", "mlp.up_proj": "feed_forward.w3",
           "feed_forward.gate_proj": "feed_forward.w1", "feed_forward.down_proj": "feed_forward.w2",
           "feed_forward.up_proj": "feed_forward.w3",
           "input_layernorm": "attention_norm", "post_attention_layernorm": "ffn_norm"}
    if n.startswith("language_model.model.layers."):
        rest = n[len("language_model.model."):]
    elif n.startswith("vision_tower.transformer.layers."):
        rest = "vision_encoder." + n[len("vision_tower."):]
    else:
        raise KeyError(hf)
    for a, b in sub.items():
        rest = rest.replace("." + a + ".", "." + b + ".")
    return rest


def unpermute_for_rope(w, n_heads):
    """Inverse of HF permute_for_rope: W_mi[h*hd + 2i + j] = W_hf[h*hd + j*hd/2 + i] (rotate-half -> interleaved)."""
    rows, cols = w.shape
    hd = rows // n_heads
    return w.reshape(n_heads, 2, hd // 2, cols).transpose(1, 2).reshape(rows, cols).contiguous()


def to_mistral_state(hf_state, cfg):
    tc, vc = cfg.text_config, cfg.vision_config
    out = {}
    for k, w in hf_state.items():
        name = mistral_name(k)
        if name.startswith("layers.") and name.endswith("attention.wq.weight"):
            w = unpermute_for_rope(w, tc.num_attention_heads)
        elif name.startswith("layers.") and name.endswith("attention.wk.weight"):
            w = unpermute_for_rope(w, tc.num_key_value_heads)
        elif name.startswith("vision_encoder.") and (name.endswith("wq.weight") or name.endswith("wk.weight")):
            w = unpermute_for_rope(w, vc.num_attention_heads)
        assert name not in out, name
        out[name] = w.contiguous()
    nl, nv = tc.num_hidden_layers, vc.num_hidden_layers
    assert len(out) == 9 * nl + 3 + 2 + 9 * nv + 4, len(out)
    return out


def mistral_params(cfg):
    tc, vc = cfg.text_config, cfg.vision_config
    return {
        "dim": tc.hidden_size, "n_layers": tc.num_hidden_layers, "head_dim": tc.head_dim,
        "hidden_dim": tc.intermediate_size, "n_heads": tc.num_attention_heads,
        "n_kv_heads": tc.num_key_value_heads, "rope_theta": TEXT_ROPE_THETA, "norm_eps": NORM_EPS,
        "vocab_size": tc.vocab_size,
        "vision_encoder": {
            "hidden_size": vc.hidden_size, "num_channels": vc.num_channels, "image_size": vc.image_size,
            "patch_size": vc.patch_size, "rope_theta": VISION["rope_theta"],
            "intermediate_size": vc.intermediate_size, "num_hidden_layers": vc.num_hidden_layers,
            "num_attention_heads": vc.num_attention_heads, "image_token_id": IMG,
            "image_break_token_id": IMG_BREAK, "image_end_token_id": IMG_END, "adapter_bias": True,
        },
    }


def write_model(name, spec, out_dir):
    cfg = build_config(spec)
    torch.manual_seed(spec["seed"])
    model = LlavaForConditionalGeneration(cfg).eval()
    init_weights(model, spec["seed"], round_bf16=spec["dtype"] == "BF16")
    mdir = out_dir / "models" / name
    hf_dir, mi_dir = mdir / "hf", mdir / "mistral"
    for d in (hf_dir, mi_dir):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
    if spec["dtype"] == "BF16":
        model = model.to(torch.bfloat16)
    model.save_pretrained(hf_dir, safe_serialization=True,
                          max_shard_size="200KB" if spec["shard"] else "50GB")
    (hf_dir / "generation_config.json").unlink(missing_ok=True)
    hf_cfg = json.loads((hf_dir / "config.json").read_text())
    assert hf_cfg["vision_config"]["hidden_act"] == "silu"
    # Read back exactly what was written and convert it to the mistral layout.
    hf_state = {}
    for f in sorted(hf_dir.glob("*.safetensors")):
        hf_state.update(load_file(f))
    mi_state = to_mistral_state(hf_state, cfg)
    save_file(mi_state, mi_dir / "consolidated.safetensors", metadata={"format": "pt"})
    (mi_dir / "params.json").write_text(json.dumps(mistral_params(cfg), indent=2) + "\n")
    # The goldens come from the model reloaded from the HF files (proves the HF files), in fp32.
    ref, info = LlavaForConditionalGeneration.from_pretrained(
        hf_dir, dtype=torch.float32, attn_implementation="eager", output_loading_info=True)
    assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
    return ref.eval(), cfg, hf_cfg, sorted(hf_state)


# ----------------------------------------------------------------------------------------------
# Independent fp64 reference (mistral-inference math on the mistral-layout files)
# ----------------------------------------------------------------------------------------------

def _erf(x):
    return np.vectorize(math.erf, otypes=[np.float64])(x)


def rms_norm(x, g, eps=NORM_EPS):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * g


def rope_interleaved(x, ang):
    """x [N, heads, hd]; ang [N, hd/2]. Complex rotation of the pairs (2p, 2p+1) by ang[:, p]."""
    c, s = np.cos(ang)[:, None, :], np.sin(ang)[:, None, :]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = np.empty_like(x)
    out[..., 0::2] = x0 * c - x1 * s
    out[..., 1::2] = x0 * s + x1 * c
    return out


def attention(q, k, v, mask):
    """q [N, H, hd], k/v [M, KV, hd]; query head h uses kv head h // (H/KV); mask [N, M] bool (True = keep)."""
    n_heads, n_kv = q.shape[1], k.shape[1]
    rep = n_heads // n_kv
    k = np.repeat(k, rep, axis=1)
    v = np.repeat(v, rep, axis=1)
    s = np.einsum("nhd,mhd->hnm", q, k) / math.sqrt(q.shape[-1])
    s = np.where(mask[None], s, -np.inf)
    s = s - s.max(-1, keepdims=True)
    p = np.exp(s)
    p /= p.sum(-1, keepdims=True)
    return np.einsum("hnm,mhd->nhd", p, v).reshape(q.shape[0], -1)


def block(x, w, pre, n_heads, n_kv, hd, ang, mask):
    a = rms_norm(x, w[pre + "attention_norm.weight"])
    q = (a @ w[pre + "attention.wq.weight"].T).reshape(len(x), n_heads, hd)
    k = (a @ w[pre + "attention.wk.weight"].T).reshape(len(x), n_kv, hd)
    v = (a @ w[pre + "attention.wv.weight"].T).reshape(len(x), n_kv, hd)
    q, k = rope_interleaved(q, ang), rope_interleaved(k, ang)
    x = x + attention(q, k, v, mask) @ w[pre + "attention.wo.weight"].T
    b = rms_norm(x, w[pre + "ffn_norm.weight"])
    g = b @ w[pre + "feed_forward.w1.weight"].T
    silu = g / (1.0 + np.exp(-g))
    return x + (silu * (b @ w[pre + "feed_forward.w3.weight"].T)) @ w[pre + "feed_forward.w2.weight"].T


def fp32_freqs(theta, dim):
    """MI/HF compute 1/theta^(2k/dim) in fp32 (k = 0..dim/2-1); we keep that rounding, then go fp64."""
    return (1.0 / (np.float32(theta) ** (np.arange(0, dim, 2, dtype=np.float32) / np.float32(dim)))).astype(np.float32)


def vision_encode(w, p, image):
    """One image [3, H, W] -> [h*w, D]. Images are encoded separately (block-diagonal attention)."""
    ve = p["vision_encoder"]
    ps, D, nh = ve["patch_size"], ve["hidden_size"], ve["num_attention_heads"]
    hd = D // nh
    C, H, W = image.shape
    h, wd = H // ps, W // ps
    # Conv2d(stride = kernel = ps, no bias) as a GEMM: patch vector index c*ps*ps + ky*ps + kx, tokens row-major.
    patches = image.reshape(C, h, ps, wd, ps).transpose(1, 3, 0, 2, 4).reshape(h * wd, C * ps * ps)
    x = patches @ w["vision_encoder.patch_conv.weight"].reshape(D, -1).T
    x = rms_norm(x, w["vision_encoder.ln_pre.weight"])
    # 2D RoPE (spec §4.3): angle vector [r*f_h[0..hd/4-1], c*f_w[0..hd/4-1]], f_h = f[0::2], f_w = f[1::2].
    f = fp32_freqs(ve["rope_theta"], hd)
    rows, cols = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(wd, dtype=np.float32), indexing="ij")
    ang = np.concatenate([np.outer(rows.ravel(), f[0::2]), np.outer(cols.ravel(), f[1::2])], axis=1)
    ang = ang.astype(np.float32).astype(np.float64)
    mask = np.ones((h * wd, h * wd), dtype=bool)
    for j in range(ve["num_hidden_layers"]):
        x = block(x, w, f"vision_encoder.transformer.layers.{j}.", nh, nh, hd, ang, mask)
    return x


def reference_logits(mistral_dir, input_ids, images):
    p = json.loads((Path(mistral_dir) / "params.json").read_text())
    w = {k: v.to(torch.float64).numpy() for k, v in load_file(Path(mistral_dir) / "consolidated.safetensors").items()}
    ids = np.asarray(input_ids)
    x = w["tok_embeddings.weight"][ids]
    if images:
        feats = np.concatenate([vision_encode(w, p, np.asarray(im, dtype=np.float64)) for im in images])
        z = feats @ w["vision_language_adapter.w_in.weight"].T + w["vision_language_adapter.w_in.bias"]
        z = 0.5 * z * (1.0 + _erf(z / math.sqrt(2.0)))  # exact (erf) GELU
        z = z @ w["vision_language_adapter.w_out.weight"].T + w["vision_language_adapter.w_out.bias"]
        pos = np.nonzero(ids == p["vision_encoder"]["image_token_id"])[0]
        assert len(pos) == len(z), (len(pos), len(z))
        x[pos] = z  # k-th [IMG] gets the k-th adapter row (image by image, row-major)
    T, hd = len(ids), p["head_dim"]
    f = fp32_freqs(p["rope_theta"], hd)
    ang = np.outer(np.arange(T, dtype=np.float32), f).astype(np.float32).astype(np.float64)
    causal = np.tril(np.ones((T, T), dtype=bool))
    for i in range(p["n_layers"]):
        x = block(x, w, f"layers.{i}.", p["n_heads"], p["n_kv_heads"], hd, ang, causal)
    return rms_norm(x, w["norm.weight"], p["norm_eps"]) @ w["output.weight"].T


# ----------------------------------------------------------------------------------------------
# Cases
# ----------------------------------------------------------------------------------------------

CASES = [
    # (model, case, segments, description); a segment is an int (number of random text ids) or (H, W) pixels
    ("gqa_f32", "text_only", [39], "text only, 40 tokens"),
    ("gqa_f32", "one_image", [6, (24, 40), 8], "one non-square 24x40 px image (3x5 patches), text before and after"),
    ("gqa_f32", "three_images", [4, (16, 32), 3, (40, 24), 2, (8, 8), 5],
     "three images 16x32, 40x24, 8x8 px with text between them"),
    ("gqa_f32", "long_context", [120, (48, 64), 125],
     "~300 tokens, one 48x64 px image (6x8 patches) in the middle"),
    ("mha_f32", "one_image", [5, (32, 48), 7], "MHA decoder, one 32x48 px image (4x6 patches)"),
    ("gqa_bf16", "one_image", [6, (24, 40), 8], "bf16 weights, one 24x40 px image (3x5 patches)"),
    ("gqa_bf16", "three_images", [4, (16, 32), 3, (40, 24), 2, (8, 8), 5],
     "bf16 weights, three images 16x32, 40x24, 8x8 px with text between them"),
]


def image_tokens(h, w):
    toks = ([IMG] * w + [IMG_BREAK]) * h
    toks[-1] = IMG_END
    return toks


def build_case(segments, ps, seed):
    rng = np.random.default_rng(seed)
    ids, images = [BOS], []
    for seg in segments:
        if isinstance(seg, int):
            ids += rng.integers(TEXT_LO, VOCAB, size=seg).tolist()
        else:
            H, W = seg
            # Normalized-pixel-like values, rounded to bf16-representable floats so that an engine that
            # casts pixels to bf16 (as mistral-inference does) sees exactly the same input.
            im = torch.from_numpy(rng.standard_normal((3, H, W)).astype(np.float32))
            images.append(im.to(torch.bfloat16).to(torch.float32))
            ids += image_tokens(H // ps, W // ps)
    return torch.tensor(ids, dtype=torch.int64), images


@torch.no_grad()
def hf_logits(model, ids, images):
    kw = {}
    if images:
        Hm, Wm = max(im.shape[1] for im in images), max(im.shape[2] for im in images)
        pix = torch.zeros(len(images), 3, Hm, Wm)  # padded batch; image_sizes crops the padding away
        for i, im in enumerate(images):
            pix[i, :, :im.shape[1], :im.shape[2]] = im
        kw = dict(pixel_values=pix, image_sizes=torch.tensor([list(im.shape[1:]) for im in images]))
    return model(input_ids=ids[None], **kw).logits[0].float()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="tests/data/goldens", help="output directory")
    args = ap.parse_args()
    out = Path(args.out)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    (out / "cases").mkdir(parents=True, exist_ok=True)
    for old in (out / "cases").glob("*.safetensors"):
        old.unlink()

    models, manifest_models, hf_info = {}, [], {}
    for name, spec in MODELS.items():
        model, cfg, hf_cfg, hf_names = write_model(name, spec, out)
        models[name] = model
        hf_info[name] = (hf_cfg, hf_names)
        manifest_models.append({"name": name, "dtype": spec["dtype"], "mistral": f"models/{name}/mistral",
                                "hf": f"models/{name}/hf"})

    manifest_cases = []
    for idx, (mname, case, segments, desc) in enumerate(CASES):
        ids, images = build_case(segments, VISION["patch_size"], seed=7000 + idx)
        logits = hf_logits(models[mname], ids, images)
        ref = reference_logits(out / "models" / mname / "mistral", ids.numpy(), [im.numpy() for im in images])
        hf64 = logits.double().numpy()
        rel = float(np.abs(ref - hf64).max() / np.abs(hf64).max())
        top2 = np.sort(hf64, axis=-1)[:, -2:]
        margin = top2[:, 1] - top2[:, 0]
        agree = float((ref.argmax(-1) == hf64.argmax(-1)).mean())
        full = f"{mname}_{case}"
        print(f"{full:24s} T={len(ids):4d} images={[list(im.shape[1:]) for im in images]} "
              f"max_rel_diff(fp64 mistral-layout vs HF)={rel:.3e} argmax_agree={agree:.3f} "
              f"|logit|max={np.abs(hf64).max():.2f} top1-top2 margin: median={np.median(margin):.3f} "
              f"min={margin.min():.4f}")
        assert rel < REL_TOL, f"{full}: reference mismatch {rel}"
        tensors = {"input_ids": ids.contiguous(), "logits": logits.contiguous()}
        for i, im in enumerate(images):
            tensors[f"image_{i}"] = im.contiguous()
        path = out / "cases" / f"{full}.safetensors"
        save_file(tensors, path, metadata={"model": mname, "description": desc})
        back = load_file(path)  # the hand-rolled writer must round-trip through the official reader
        assert back.keys() == tensors.keys() and all(torch.equal(back[k], tensors[k]) for k in tensors)
        with safetensors.safe_open(path, "pt") as f:
            assert f.metadata() == {"model": mname, "description": desc}
        manifest_cases.append({"case": full, "model": mname, "file": f"cases/{full}.safetensors",
                               "num_tokens": len(ids), "images": [list(im.shape[1:]) for im in images],
                               "dtype": MODELS[mname]["dtype"], "description": desc})

    manifest = {"generator": "tools/make_goldens.py", "torch": torch.__version__,
                "transformers": transformers.__version__, "safetensors": safetensors.__version__,
                "numpy": np.__version__, "reference_rel_tol": REL_TOL,
                "models": manifest_models, "cases": manifest_cases}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    cfg0, names0 = hf_info["gqa_f32"]
    print("HF config rope spelling:", "rope_parameters" if "rope_parameters" in cfg0["text_config"] else "rope_theta",
          "| HF tensor names:", "legacy language_model.model.*" if any(n.startswith("language_model.model.")
                                                                     for n in names0) else "model.language_model.*")


if __name__ == "__main__":
    main()
