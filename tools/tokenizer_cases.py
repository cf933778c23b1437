#!/usr/bin/env python3
"""Generates tokenizer differential cases and mistral_common's answers for them.

Writes a JSON file with
  tekken_path: the tokenizer file mistral_common loads for Pixtral-12B (tekken_240911.json)
  encode: [{"text": str, "ids": [int]}]         ids = Tekkenizer.encode(text, bos=False, eos=False)
  decode: [{"ids": [int], "keep": str, "ignore": str}]   Tekkenizer.decode with each policy
The cases are generated deterministically (fixed seed); nothing here is hand-written expected output.
Usage: tokenizer_cases.py --out cases.json [--count 2400]
ref: spec/inputs.md §2 (encode/decode), §8 (verification)
"""
import argparse
import json
import os
import random
import unicodedata

import mistral_common
from mistral_common.tokens.tokenizers.tekken import SpecialTokenPolicy, Tekkenizer

SAMPLES = [
    "Hello world", "A B\n\nC", "don't stop", "x  =  1234.5;", "a   b", "line1\n  line2", " \n\n  x",
    "foo/bar//\n", "tab\tsep", "naïve 🙂 ok", "end   ", "SYSTEM\n\nc", "HTTPServer ÉCOLE été",
    "[INST]hi[/INST]", "<s>[INST] What is in this image? [/INST]</s>", "[IMG][IMG_BREAK][IMG_END]",
    "<unk><pad><SPECIAL_20>", "Das ist ein schöner Tag in München.", "Привет, как дела? Всё хорошо!",
    "東京は日本の首都です。北京是中国的首都。", "서울은 한국의 수도입니다.", "مرحبا بالعالم، كيف حالك؟",
    "שלום עולם", "नमस्ते दुनिया, आप कैसे हैं?", "สวัสดีชาวโลก", "Γειά σου Κόσμε", "Xin chào thế giới",
    "ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ", "Ⅻ ½ ² ³ ٣٤ ௰", "e\u0301 a\u0308 n\u0303", "👩‍👩‍👧‍👦 🏳️‍🌈 👍🏽 🇫🇷",
    "def f(x):\n    return x**2  # square\n", "for (int i = 0; i < n; ++i) { a[i] += b[i]; }",
    "SELECT * FROM users WHERE id = 42;", "<div class=\"a\">&nbsp;</div>", "https://example.com/a?b=c&d=e",
    "\r\n\r\n", "\u00a0\u2003\u3000x\u2028y\u2029z\u0085w", "\u180e\u200b\ufeff", "\x00\x01\x1f\x7f",
    "1234567890" * 3, "    indented\n\tand\ttabbed", "MixedCASEWordsAndCamelCase snake_case kebab-case",
]

SCRIPT_RANGES = [  # (first, last) code points of common scripts and symbol blocks
    (0x20, 0x7E), (0xA0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x530, 0x58F), (0x590, 0x5FF),
    (0x600, 0x6FF), (0x900, 0x97F), (0x980, 0x9FF), (0xE00, 0xE7F), (0x10A0, 0x10FF), (0x1100, 0x11FF),
    (0x1E00, 0x1EFF), (0x2000, 0x206F), (0x2070, 0x209F), (0x20A0, 0x20CF), (0x2100, 0x214F),
    (0x2150, 0x218F), (0x2190, 0x21FF), (0x2200, 0x22FF), (0x2500, 0x257F), (0x3000, 0x303F),
    (0x3040, 0x309F), (0x30A0, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xFF00, 0xFFEF),
    (0x1F300, 0x1F5FF), (0x1F600, 0x1F64F), (0x1F900, 0x1F9FF), (0x1D400, 0x1D7FF), (0x20000, 0x2A6DF),
]
WORDS = ["the", "The", "THE", " and", "function", "return", "int", "x", "1", "2024", "é", "ß", "İ", "ǅ",
         "ﬁ", "[INST]", "[/INST]", "<s>", "</s>", "[IMG]", "<pad>", "\n", "\n\n", " ", "  ", "\t", "\r\n",
         "//", "/*", "*/", "==", "->", "::", "'s", "'T", "...", "…", "—", "«", "»", "“", "”", "🙂", "🤖",
         "中文", "日本語", "한국어", "ру", "ع", "ה", "क", "ก", "ä", "ö", "ü", "$", "€", "%", "©", "™"]


def assigned(cp):
    # Unassigned (Cn) and surrogate code points are left out: their categories depend on the
    # Unicode version of each regex engine, and surrogates cannot be UTF-8.
    return unicodedata.category(chr(cp)) not in ("Cn", "Cs")


def random_script_text(rng, n):
    out = []
    lo, hi = rng.choice(SCRIPT_RANGES)
    for _ in range(n):
        if rng.random() < 0.15:
            lo, hi = rng.choice(SCRIPT_RANGES)
        if rng.random() < 0.2:
            out.append(rng.choice(" \n\t  "))
            continue
        cp = rng.randint(lo, hi)
        if assigned(cp):
            out.append(chr(cp))
    return "".join(out)


def random_any_text(rng, n):
    out = []
    while len(out) < n:
        cp = rng.choice([rng.randint(0, 0x7F), rng.randint(0, 0xFFFF), rng.randint(0, 0x10FFFF)])
        if assigned(cp):
            out.append(chr(cp))
    return "".join(out)


def make_texts(rng, count):
    texts = list(SAMPLES)
    kinds = ["words", "script", "any", "bytes", "runs", "code"]
    while len(texts) < count:
        kind = kinds[len(texts) % len(kinds)]
        if kind == "words":
            texts.append("".join(rng.choice(WORDS) for _ in range(rng.randint(1, 40))))
        elif kind == "script":
            texts.append(random_script_text(rng, rng.randint(1, 120)))
        elif kind == "any":
            texts.append(random_any_text(rng, rng.randint(1, 40)))
        elif kind == "bytes":  # random bytes decoded leniently (U+FFFD for ill-formed parts)
            raw = bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 80)))
            texts.append(raw.decode("utf-8", errors="replace"))
        elif kind == "runs":  # long runs: whitespace, digits, one letter, punctuation
            unit = rng.choice([" ", "\n", "\t", " \n", "a", "ab", "9", "!", "=", "🙂", "é", "\u3000"])
            texts.append(rng.choice(["", "x", "Word "]) + unit * rng.randint(50, 700) + rng.choice(["", "y", " end"]))
        else:
            sample = rng.choice(SAMPLES[30:34])
            texts.append("\n".join(sample for _ in range(rng.randint(1, 6))))
    return texts


def make_decode_cases(rng, tok, count):
    cases = []
    n_special = tok.num_special_tokens
    for _ in range(count):
        ids = []
        for _ in range(rng.randint(1, 12)):
            r = rng.random()
            if r < 0.25:
                ids.append(rng.randint(0, n_special - 1) if rng.random() < 0.5 else rng.randint(0, 20))
            elif r < 0.6:
                ids.append(n_special + rng.randint(0, 255))  # single bytes: split UTF-8 sequences
            else:
                ids.append(rng.randint(n_special, tok.n_words - 1))
        cases.append({
            "ids": ids,
            "keep": tok.decode(ids, special_token_policy=SpecialTokenPolicy.KEEP),
            "ignore": tok.decode(ids, special_token_policy=SpecialTokenPolicy.IGNORE),
        })
    return cases


def tekken_path():
    return os.path.join(os.path.dirname(mistral_common.__file__), "data", "tekken_240911.json")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--count", type=int, default=2400)
    parser.add_argument("--seed", type=int, default=20240911)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    path = tekken_path()
    tok = Tekkenizer.from_file(path)
    texts = make_texts(rng, args.count)
    encode = [{"text": t, "ids": tok.encode(t, bos=False, eos=False)} for t in texts]
    decode = make_decode_cases(rng, tok, 600)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump({"tekken_path": path, "encode": encode, "decode": decode}, f, ensure_ascii=True)
    print(f"wrote {len(encode)} encode and {len(decode)} decode cases to {args.out}")


if __name__ == "__main__":
    main()
