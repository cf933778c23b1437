#!/usr/bin/env python3
"""Checks `pixtral encode-chat` against the cases written by tools/chat_cases.py.

For each case (the first --limit of them): the command must print mistral_common's token ids and,
for each image, [rows * 16, cols * 16]; or fail with a non-zero exit status when mistral_common
rejected the request. Usage: chat_cli_check.py --pixtral BIN --cases DIR [--limit N]
"""
import argparse
import json
import pathlib
import subprocess
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pixtral", required=True)
    ap.add_argument("--cases", required=True)
    ap.add_argument("--limit", type=int, default=40)
    args = ap.parse_args()
    root = pathlib.Path(args.cases)
    manifest = json.loads((root / "cases.json").read_text())
    failures = 0
    for case in manifest["cases"][: args.limit]:
        proc = subprocess.run([args.pixtral, "encode-chat", "--tokenizer", manifest["tokenizer"],
                               "--request", str(root / case["request"])], capture_output=True, text=True)
        if "error" in case:
            if proc.returncode == 0:
                print(f"{case['name']}: accepted, but mistral_common rejected it: {case['error']}")
                failures += 1
            continue
        if proc.returncode != 0:
            print(f"{case['name']}: exit {proc.returncode}: {proc.stderr.strip()}")
            failures += 1
            continue
        got = json.loads(proc.stdout)
        want_images = [[r * 16, c * 16] for r, c in case["images"]]
        if got["tokens"] != case["tokens"] or got["images"] != want_images:
            print(f"{case['name']}: output differs from mistral_common")
            failures += 1
    print(f"chat_cli_check: {min(args.limit, len(manifest['cases']))} cases, {failures} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
