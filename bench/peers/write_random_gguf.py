#!/usr/bin/env python3
"""Write a random-weight BF16 GGUF with the shape of the Pixtral-12B / Mistral-Nemo decoder.

The file uses llama.cpp's "llama" architecture, so llama.cpp's llama-bench and
llama-batched-bench can load it for side-by-side speed comparisons. The weights are
random (normal * 0.02, stored as bf16); the output is meaningless, only the speed counts.

The tokenizer is synthetic: a GPT-2 style BPE vocabulary ("gpt2" model, "default"
pre-tokenizer) of exactly --vocab tokens:
    0 "<unk>", 1 "<s>" (bos), 2 "</s>" (eos)      -- CONTROL
    3 .. 258  the 256 GPT-2 byte-level tokens       -- NORMAL (llama.cpp's BPE falls back
                                                       to these, e.g. for "\n")
    259 ..    "<t{i}>" filler tokens                -- NORMAL
and a single merge (GGUF arrays may not be empty, and llama.cpp requires the key).

Tensor data is streamed: one ~64 MiB block of random bf16 values is generated once and
written repeatedly (starting at a per-tensor random offset) for every tensor, so the
24 GB default model never sits in memory and generation is limited by disk speed.

Requires only `gguf` and `numpy` (pip install gguf numpy).

Example (defaults = Pixtral-12B decoder):
    python3 bench/peers/write_random_gguf.py --out pixtral-12b-random-bf16.gguf
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import gguf

BLOCK_BYTES = 64 << 20  # size of the random block that is tiled into every tensor


def gpt2_byte_tokens() -> list[str]:
    """The 256 GPT-2 byte-level tokens (bytes_to_unicode), ordered by byte value."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, cs))
    return [chr(table[b]) for b in range(256)]


def f32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """Round-to-nearest-even float32 -> bf16 bit patterns (uint16)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    u = u + (np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1)))
    return (u >> np.uint32(16)).astype(np.uint16)


class TiledTensor:
    """Stands in for a numpy array in GGUFWriter.write_tensor_data: it only needs
    .nbytes and .tofile(). Writes `nbytes` bytes by cycling through `block` starting
    at byte `start` (a multiple of the element size), without materialising the tensor."""

    def __init__(self, block: memoryview, nbytes: int, start: int):
        self.block = block
        self.nbytes = nbytes
        self.start = start

    def tofile(self, fout) -> None:
        left = self.nbytes
        pos = self.start
        n_block = len(self.block)
        while left > 0:
            n = min(left, n_block - pos)
            fout.write(self.block[pos:pos + n])
            left -= n
            pos = 0 if pos + n >= n_block else pos + n


def build_tensor_list(a) -> list[tuple[str, tuple[int, ...], str]]:
    """(gguf name, numpy shape [out, in], 'bf16'|'f32') in file order."""
    q_dim = a.heads * a.head_dim
    kv_dim = a.kv_heads * a.head_dim
    t = [("token_embd.weight", (a.vocab, a.dim), "bf16")]
    for i in range(a.layers):
        p = f"blk.{i}."
        t += [
            (p + "attn_norm.weight", (a.dim,), "f32"),
            (p + "attn_q.weight", (q_dim, a.dim), "bf16"),
            (p + "attn_k.weight", (kv_dim, a.dim), "bf16"),
            (p + "attn_v.weight", (kv_dim, a.dim), "bf16"),
            (p + "attn_output.weight", (a.dim, q_dim), "bf16"),
            (p + "ffn_norm.weight", (a.dim,), "f32"),
            (p + "ffn_gate.weight", (a.ffn, a.dim), "bf16"),
            (p + "ffn_up.weight", (a.ffn, a.dim), "bf16"),
            (p + "ffn_down.weight", (a.dim, a.ffn), "bf16"),
        ]
    t += [
        ("output_norm.weight", (a.dim,), "f32"),
        ("output.weight", (a.vocab, a.dim), "bf16"),
    ]
    return t


def add_metadata(w: gguf.GGUFWriter, a) -> None:
    arch = "llama"
    w.add_name(a.name)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_BF16)
    w.add_context_length(a.ctx)
    w.add_embedding_length(a.dim)
    w.add_block_count(a.layers)
    w.add_feed_forward_length(a.ffn)
    w.add_head_count(a.heads)
    w.add_head_count_kv(a.kv_heads)
    w.add_key_length(a.head_dim)
    w.add_value_length(a.head_dim)
    w.add_rope_dimension_count(a.head_dim)
    w.add_rope_freq_base(a.rope_theta)
    w.add_layer_norm_rms_eps(a.norm_eps)
    w.add_vocab_size(a.vocab)
    assert w.arch == arch

    # synthetic GPT-2 style BPE tokenizer with exactly a.vocab tokens
    special = ["<unk>", "<s>", "</s>"]
    byte_toks = gpt2_byte_tokens()
    n_fixed = len(special) + len(byte_toks)
    tokens = special + byte_toks + [f"<t{i}>" for i in range(n_fixed, a.vocab)]
    types = [gguf.TokenType.CONTROL] * len(special) + \
        [gguf.TokenType.NORMAL] * (a.vocab - len(special))
    assert len(tokens) == a.vocab == len(types) and len(set(tokens)) == a.vocab
    space = byte_toks[ord(" ")]
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges([f"{space} {space}"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output .gguf path")
    ap.add_argument("--name", default="pixtral-12b-decoder-random-bf16")
    ap.add_argument("--dim", type=int, default=5120)
    ap.add_argument("--layers", type=int, default=40)
    ap.add_argument("--heads", type=int, default=32)
    ap.add_argument("--kv-heads", type=int, default=8)
    ap.add_argument("--head-dim", type=int, default=128)
    ap.add_argument("--ffn", type=int, default=14336)
    ap.add_argument("--vocab", type=int, default=131072)
    ap.add_argument("--rope-theta", type=float, default=1e9)
    ap.add_argument("--ctx", type=int, default=131072)
    ap.add_argument("--norm-eps", type=float, default=1e-5)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    if a.vocab < 260:
        ap.error("--vocab must be >= 260 (3 control + 256 byte tokens + 1)")
    if a.heads % a.kv_heads:
        ap.error("--heads must be a multiple of --kv-heads")

    t0 = time.time()
    rng = np.random.default_rng(a.seed)
    n_block = BLOCK_BYTES // 2
    block = f32_to_bf16_bits(rng.standard_normal(n_block, dtype=np.float32) * np.float32(0.02))
    block[block & 0x7FFF == 0] = 0x3C00  # no exact zeros (0x3C00 = bf16 0.0078125)
    block_mv = memoryview(block.view(np.uint8))
    print(f"random block: {block.nbytes >> 20} MiB in {time.time() - t0:.2f} s", flush=True)

    tensors = build_tensor_list(a)
    w = gguf.GGUFWriter(a.out, "llama")
    add_metadata(w, a)
    total = 0
    for name, shape, kind in tensors:
        n = int(np.prod(shape))
        if kind == "bf16":
            w.add_tensor_info(name, shape, np.dtype(np.uint16), n * 2,
                              raw_dtype=gguf.GGMLQuantizationType.BF16)
            total += n * 2
        else:
            w.add_tensor_info(name, shape, np.dtype(np.float32), n * 4)
            total += n * 4
    print(f"{len(tensors)} tensors, {total / 1e9:.2f} GB of tensor data -> {a.out}", flush=True)

    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()

    t1 = time.time()
    written = 0
    next_report = 0.0
    for name, shape, kind in tensors:
        n = int(np.prod(shape))
        if kind == "bf16":
            start = int(rng.integers(0, n_block)) * 2
            w.write_tensor_data(TiledTensor(block_mv, n * 2, start))
            written += n * 2
        else:  # RMSNorm weights: 1 + N(0, 0.02), never zero
            v = (1.0 + 0.02 * rng.standard_normal(n)).astype(np.float32)
            w.write_tensor_data(v)
            written += v.nbytes
        if written >= next_report or name == tensors[-1][0]:
            dt = time.time() - t1
            print(f"  {written / 1e9:7.2f} / {total / 1e9:.2f} GB  {dt:6.1f} s  "
                  f"({written / 1e9 / max(dt, 1e-9):.2f} GB/s)  {name}", flush=True)
            next_report = written + max(total // 20, 1)
    w.close()
    dt = time.time() - t0
    print(f"done: {written} bytes of tensor data ({written / 1e9:.2f} GB) in {dt:.1f} s "
          f"({written / 1e9 / dt:.2f} GB/s) -> {a.out}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
