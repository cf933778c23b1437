#!/usr/bin/env python3
"""Single-threaded encode throughput: pixtral's tokenizer vs tiktoken on the same 1 MB of mixed text.

tiktoken gets the same ranks (tekken_240911.json's vocabulary truncated to default_vocab_size) and
the file's pattern, exactly as mistral_common builds it. Both encode the same text; the token counts
must agree. Usage:
  compare_tiktoken.py --bench BUILD/bench/tokenizer/tokenizer_bench [--mb 1] [--repeat 5]
"""
import argparse
import os
import random
import re
import subprocess
import sys
import tempfile
import time

import mistral_common
from mistral_common.tokens.tokenizers.tekken import Tekkenizer

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import tokenizer_cases  # noqa: E402  (the differential cases' text generator)


def mixed_text(megabytes):
    # Mostly prose and code (what prompts hold), plus the generator's scripts, emoji and runs.
    rng = random.Random(1)
    parts, size = [], 0
    prose = [s for s in tokenizer_cases.SAMPLES if len(s) > 15]
    generated = tokenizer_cases.make_texts(rng, 3000)
    while size < megabytes * 1_000_000:
        piece = rng.choice(prose) if rng.random() < 0.5 else rng.choice(generated)
        parts.append(piece)
        size += len(piece.encode("utf-8")) + 1
    return "\n".join(parts)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bench", required=True)
    parser.add_argument("--mb", type=float, default=1.0)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    path = os.path.join(os.path.dirname(mistral_common.__file__), "data", "tekken_240911.json")
    enc = Tekkenizer.from_file(path)._model  # tiktoken.Encoding(pat_str=file pattern, ranks=truncated vocab)
    text = mixed_text(args.mb)
    data = text.encode("utf-8")
    best = float("inf")
    for _ in range(args.repeat):
        start = time.perf_counter()
        ids = enc.encode_ordinary(text)
        best = min(best, time.perf_counter() - start)
    tk_mbs = len(data) / best / 1e6
    with tempfile.NamedTemporaryFile(suffix=".txt", delete=False) as f:
        f.write(data)
    try:
        out = subprocess.run([args.bench, "--tokenizer", path, "--text", f.name, "--repeat", str(args.repeat)],
                             check=True, capture_output=True, text=True).stdout
    finally:
        os.unlink(f.name)
    fields = dict(re.findall(r"(\w+)=([\d.]+)", out))
    px_mbs, px_tokens = float(fields["mb_per_s"]), int(fields["tokens"])
    print(f"text: {len(data)} bytes, tiktoken tokens {len(ids)}, pixtral tokens {px_tokens}")
    print(f"tiktoken {tiktoken_version()}: {tk_mbs:.2f} MB/s")
    print(f"pixtral:        {px_mbs:.2f} MB/s")
    print(f"ratio pixtral/tiktoken: {px_mbs / tk_mbs:.2f}x")
    return 0 if px_tokens == len(ids) else 1


def tiktoken_version():
    import tiktoken
    return tiktoken.__version__


if __name__ == "__main__":
    sys.exit(main())
