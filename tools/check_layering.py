#!/usr/bin/env python3
"""Checks every #include "..." line in src/ and include/ against the allowed layer directions.

A folder may include its own headers and those of the folders it is allowed to depend on
(docs/architecture.md). Exit status 1 and one line per violation otherwise.
"""
import pathlib
import re
import sys

# folder -> folders it may include from (directly; transitive closure is computed below).
ALLOWED = {
    "pixtral": [],                       # include/pixtral: the public API
    "base": ["pixtral"],
    "io": ["base"],
    "tokenizer": ["base"],
    "image": ["base"],
    "prompt": ["tokenizer", "image", "base"],
    "backend": ["base"],                 # the interface
    "backend/cpu": ["backend"],
    "backend/cuda": ["backend"],
    "model": ["backend", "io"],
    "kv_cache": ["base"],
    "engine": ["pixtral", "model", "kv_cache", "prompt", "backend/cpu", "backend/cuda"],
    "server": ["pixtral", "base"],
    # The CLI also hosts developer tools (logits, make-tiny, tokenize, preprocess) that address
    # the lower layers directly; see docs/decisions/0002-cli-tools-layering.md.
    "cli": ["pixtral", "engine", "server", "model", "io", "tokenizer", "image", "prompt",
            "backend/cpu", "backend/cuda"],
}


def closure(folder):
    seen, stack = set(), [folder]
    while stack:
        f = stack.pop()
        for d in ALLOWED.get(f, []):
            if d not in seen:
                seen.add(d)
                stack.append(d)
    return seen | {folder}


def folder_of(rel):
    parts = rel.parts
    if parts[0] == "include":
        return "pixtral"
    if len(parts) > 2 and parts[1] == "backend" and parts[2] in ("cpu", "cuda"):
        return "backend/" + parts[2]
    return parts[1]


def target_folder(inc):
    parts = inc.split("/")
    if parts[0] == "backend" and len(parts) > 2 and parts[1] in ("cpu", "cuda"):
        return "backend/" + parts[1]
    return parts[0]


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".")
    include_re = re.compile(r'^\s*#\s*include\s+"([^"]+)"')
    violations, checked = [], 0
    for top in ("src", "include"):
        for path in sorted((root / top).rglob("*")):
            if path.suffix not in (".h", ".hpp", ".cpp", ".cc", ".cu", ".cuh"):
                continue
            rel = path.relative_to(root)
            src = folder_of(rel)
            if src not in ALLOWED:
                violations.append(f"{rel}: folder '{src}' has no layering rule")
                continue
            allowed = closure(src)
            for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                m = include_re.match(line)
                if not m:
                    continue
                checked += 1
                inc = m.group(1)
                if "/" not in inc:  # same-folder include
                    continue
                dst = target_folder(inc)
                if dst not in ALLOWED:  # not one of ours (e.g. a generated header)
                    continue
                if dst not in allowed:
                    violations.append(f"{rel}:{lineno}: '{src}' may not include \"{inc}\" (layer '{dst}')")
    for v in violations:
        print(v)
    print(f"layering: {checked} include lines checked, {len(violations)} violations")
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
