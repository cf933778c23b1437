#!/usr/bin/env python3
"""Converts Pixtral's tekken.json to a Hugging Face tokenizer.json with transformers' own converter.

Uses transformers.integrations.mistral.tokenizer.MistralConverter (what convert_tekken_tokenizer and
convert_slow_tokenizer use for tekken files). Exits 77 (ctest's skip code) when transformers is not
importable. Usage: tokenizer_to_hf.py --out tokenizer.json [--tekken PATH]
"""
import argparse
import os
import sys


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--tekken", help="default: mistral_common's tekken_240911.json")
    args = parser.parse_args()
    try:
        from transformers.integrations.mistral.tokenizer import MistralConverter
    except ImportError as e:
        print(f"skipped: transformers is not importable ({e})")
        return 77
    path = args.tekken
    if path is None:
        import mistral_common
        path = os.path.join(os.path.dirname(mistral_common.__file__), "data", "tekken_240911.json")
    MistralConverter(vocab_file=path).converted().save(args.out)
    print(f"converted {path} -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
