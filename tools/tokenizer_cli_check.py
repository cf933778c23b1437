#!/usr/bin/env python3
"""Checks `pixtral tokenize` / `pixtral detokenize` against mistral_common's answers.

Takes the cases file of tools/tokenizer_cases.py; runs the binary on a few of its texts and id
lists and compares the printed JSON ids and text. Usage:
  tokenizer_cli_check.py --pixtral PATH --cases cases.json
"""
import argparse
import json
import subprocess
import sys


def run(cmd):
    return subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pixtral", required=True)
    parser.add_argument("--cases", required=True)
    args = parser.parse_args()
    with open(args.cases, encoding="utf-8") as f:
        cases = json.load(f)
    tekken = cases["tekken_path"]
    failures = 0
    for case in cases["encode"][:6]:
        if "\x00" in case["text"]:
            continue  # argv cannot carry NUL
        out = run([args.pixtral, "tokenize", "--tokenizer", tekken, "--text", case["text"]])
        if out.returncode != 0 or json.loads(out.stdout) != case["ids"]:
            failures += 1
            print(f"tokenize {case['text']!r}: got {out.stdout!r} {out.stderr!r}, expected {case['ids']}")
    for case in cases["decode"][:6]:
        out = run([args.pixtral, "detokenize", "--tokenizer", tekken, "--ids", json.dumps(case["ids"]),
                   "--policy", "keep"])
        if out.returncode != 0 or out.stdout != case["keep"] + "\n":
            failures += 1
            print(f"detokenize {case['ids']}: got {out.stdout!r} {out.stderr!r}, expected {case['keep']!r}")
    out = run([args.pixtral, "detokenize", "--tokenizer", tekken, "--ids", "[1,2000]", "--policy", "raise"])
    if out.returncode == 0:
        failures += 1
        print("detokenize --policy raise accepted a special token")
    print(f"{failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
