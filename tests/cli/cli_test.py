#!/usr/bin/env python3
"""End-to-end checks of the `pixtral` binary: make-tiny in both layouts gives the same logits,
logits on a golden case matches the reference, generate runs on the demo model and on token ids
(also with --n choices), and bad checkpoints fail with one clear line naming the file (never a
crash).

Usage: cli_test.py PIXTRAL_BINARY WORK_DIR GOLDENS_DIR
"""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

BIN, WORK, GOLDENS = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
failures = []


def run(*args, expect_ok=True, env=None):
    p = subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, timeout=300, env=env)
    if expect_ok and p.returncode != 0:
        failures.append(f"{args[0]} failed ({p.returncode}): {p.stderr.strip()}")
    return p


def check(cond, message):
    if not cond:
        failures.append(message)
    print(("ok   " if cond else "FAIL ") + message)


def rel(a, b):
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def main():
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)

    # make-tiny: the same seed in both layouts is the same model (HF q/k rows permuted).
    for layout in ("mistral", "hf"):
        run("make-tiny", "--out", WORK / layout, "--layout", layout, "--dtype", "f32", "--seed", "5")
    rng = np.random.default_rng(0)
    ids = [1] + list(rng.integers(1000, 1256, 5)) + ([10] * 3 + [12]) * 1 + [10] * 3 + [13] + list(rng.integers(1000, 1256, 6))
    case = {"input_ids": np.array(ids, dtype=np.int64),
            "image_0": rng.standard_normal((3, 32, 48)).astype(np.float32)}
    save_file(case, str(WORK / "case.safetensors"))
    logits = {}
    for layout in ("mistral", "hf"):
        run("logits", "--model", WORK / layout, "--input", WORK / "case.safetensors",
            "--output", WORK / f"out_{layout}.safetensors", "--backend", "cpu")
        logits[layout] = load_file(str(WORK / f"out_{layout}.safetensors"))["logits"]
    check(logits["mistral"].shape == (len(ids), 1256), f"logits shape {logits['mistral'].shape}")
    check(rel(logits["hf"], logits["mistral"]) < 1e-5, "make-tiny hf and mistral layouts give the same logits")

    # logits on a golden case, chunked, equals the reference.
    golden = GOLDENS / "cases" / "gqa_f32_three_images.safetensors"
    run("logits", "--model", GOLDENS / "models/gqa_f32/hf", "--input", golden, "--output", WORK / "g.safetensors",
        "--chunk", "5")
    check(rel(load_file(str(WORK / "g.safetensors"))["logits"], load_file(str(golden))["logits"]) < 1e-4,
          "pixtral logits --chunk 5 matches transformers on gqa_f32_three_images")

    # generate: token ids from a case file == transformers' greedy tokens.
    gen = json.loads((GOLDENS / "generation.json").read_text())["cases"][0]
    p = run("generate", "--model", GOLDENS / "models/gqa_f32/mistral", "--input",
            GOLDENS / "cases" / f"{gen['case']}.safetensors", "--max-tokens", gen["max_new_tokens"])
    check(p.returncode == 0 and json.loads(p.stdout) == gen["greedy_tokens"], "generate --input equals transformers' greedy tokens")
    p = run("generate", "--model", GOLDENS / "models/gqa_f32/mistral", "--input",
            GOLDENS / "cases" / f"{gen['case']}.safetensors", "--max-tokens", gen["max_new_tokens"], "--n", "3")
    check(p.returncode == 0 and json.loads(p.stdout) == [gen["greedy_tokens"]] * 3,
          "generate --input --n 3: three greedy choices, each equal to transformers' tokens")

    # the demo model is made on first use and generates text.
    env = dict(os.environ, XDG_CACHE_HOME=str(WORK / "cache"))
    p = run("generate", "--model", "demo", "--prompt", "Hello", "--max-tokens", "8", env=env)
    check(p.returncode == 0 and "meaningless" in p.stderr and "8 generated" in p.stderr, "generate on the demo model")
    p = run("generate", "--model", "demo", "--prompt", "Hello", "--max-tokens", "8", "--n", "2", "--temperature", "1",
            "--seed", "3", env=env)
    check(p.returncode == 0 and "--- choice 1 (length) ---" in p.stdout and "16 generated in 2 choices" in p.stderr,
          "generate --n 2 on the demo model prints both choices")
    p = subprocess.run([BIN, "chat", "--model", "demo", "--max-tokens", "4"], input="hi\n/image missing.png\nlook\nagain\n",
                       capture_output=True, text=True, timeout=300, env=env)
    check(p.returncode == 0 and p.stderr.count("generated") == 2 and "missing.png" in p.stderr,
          "chat: two turns answered, a bad image reported and the chat goes on")

    # bad checkpoints: non-zero exit, one clear line naming the file, no crash.
    bad = WORK / "bad"
    shutil.copytree(WORK / "mistral", bad)
    st = bad / "consolidated.safetensors"
    data = st.read_bytes()
    st.write_bytes(data[: len(data) // 2])
    p = run("logits", "--model", bad, "--input", WORK / "case.safetensors", "--output", WORK / "x.safetensors",
            expect_ok=False)
    check(p.returncode == 1 and "consolidated.safetensors" in p.stderr and len(p.stderr.strip().splitlines()) == 1,
          f"truncated checkpoint: clear one-line error ({p.stderr.strip()})")
    st.write_bytes(data)
    (bad / "params.json").write_text("{not json")
    p = run("logits", "--model", bad, "--input", WORK / "case.safetensors", "--output", WORK / "x.safetensors",
            expect_ok=False)
    check(p.returncode == 1 and "params.json" in p.stderr, f"params.json not JSON: clear error ({p.stderr.strip()})")
    p = run("logits", "--model", WORK / "mistral", "--input", WORK / "nonexistent.safetensors", "--output",
            WORK / "x.safetensors", expect_ok=False)
    check(p.returncode == 1 and "nonexistent.safetensors" in p.stderr, "missing input file: clear error")
    p = run("logits", "--model", WORK / "mistral", expect_ok=False)
    check(p.returncode == 2, "missing flags: usage error")

    print(f"cli: {len(failures)} failures")
    for f in failures:
        print("  " + f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
