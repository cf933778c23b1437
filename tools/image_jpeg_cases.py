#!/usr/bin/env python3
"""Generates the JPEG files of the parallel-decoder test (tests/image/jpeg_parallel_test.cpp).

Usage: image_jpeg_cases.py OUT_DIR

Writes, deterministically and with Pillow's encoder, baseline JPEGs of every layout the parallel
decoder handles -- 4:4:4, 4:2:2, 4:2:0 and grey; sizes down to 1x1 and not multiples of the MCU;
qualities 3..100; standard and optimized Huffman tables; with and without restart markers (every
block, every few MCUs, every MCU row); photo-like, noise, flat, stripes and gradient content --
plus a few it must decline (progressive, RGB without colour transform, CMYK). For each file,
NAME.jpg and NAME.rgb (Pillow's decode converted to RGB: uint8 [H, W, 3]), and manifest.json:
{"cases": [{name, width, height, layout, quality, restart, optimize, content, handled}]}.
The directory is built under OUT_DIR.tmp-PID and renamed at the end, so concurrent callers
never see half a set.
"""
import io
import json
import os
import shutil
import sys

import numpy as np
from PIL import Image


def content(kind, w, h, channels, seed):
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    planes = []
    for c in range(channels):
        if kind == "photo":
            fx, fy = rng.uniform(0.5, 6.0, 2)
            p = 128 + 90 * np.sin(2 * np.pi * (fx * x / w + fy * y / h) + c) + rng.normal(0, 14, (h, w))
        elif kind == "noise":
            p = rng.uniform(0, 256, (h, w))
        elif kind == "flat":
            p = np.full((h, w), 40.0 + 70 * c)
        elif kind == "stripes":  # hard edges: large high-frequency coefficients
            p = np.where(((x + 2 * y + 3 * c) // (1 + c)) % 2 == 0, 255.0, 0.0)
        else:  # gradient
            p = (x * (c + 1) * 255.0 / max(w - 1, 1) + y * 128.0 / max(h - 1, 1)) % 256
        planes.append(np.clip(p, 0, 255))
    arr = np.stack(planes, axis=-1).round().astype(np.uint8)
    return arr[..., 0] if channels == 1 else arr


LAYOUTS = {"444": 0, "422": 1, "420": 2}
SIZES = [(1, 1), (2, 3), (5, 3), (7, 9), (8, 8), (15, 17), (16, 16), (17, 31), (33, 18), (64, 48), (99, 101),
         (160, 120), (257, 129), (333, 217), (640, 480), (1001, 333)]
QUALITIES = [3, 30, 75, 90, 100]
CONTENTS = ["photo", "noise", "flat", "stripes", "gradient"]
# (Pillow save options, label)
RESTARTS = [({}, "none"), ({"restart_marker_blocks": 1}, "blocks1"), ({"restart_marker_blocks": 7}, "blocks7"),
            ({"restart_marker_rows": 1}, "rows1"), ({"restart_marker_rows": 3}, "rows3")]


def main():
    out = sys.argv[1]
    tmp = f"{out}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    cases = []

    def add(name, im, handled, meta, **save):
        buf = io.BytesIO()
        im.save(buf, "JPEG", **save)
        data = buf.getvalue()
        with open(os.path.join(tmp, name + ".jpg"), "wb") as f:
            f.write(data)
        decoded = Image.open(io.BytesIO(data))
        if decoded.mode in ("L", "RGB"):
            rgb = np.asarray(decoded.convert("RGB"), dtype=np.uint8)
            with open(os.path.join(tmp, name + ".rgb"), "wb") as f:
                f.write(rgb.tobytes())
        cases.append(dict(name=name, width=im.size[0], height=im.size[1], handled=handled, **meta))

    # Every layout x every size, with quality / content / restart / optimize cycling.
    i = 0
    for layout in ["444", "422", "420", "grey"]:
        for w, h in SIZES:
            quality = QUALITIES[i % len(QUALITIES)]
            kind = CONTENTS[(i // 2) % len(CONTENTS)]
            restart, rlabel = RESTARTS[(i // 3) % len(RESTARTS)]
            # (Pillow sizes its optimize=True buffer at one byte a pixel: too small for noise.)
            optimize = i % 4 == 1 and kind != "noise"
            i += 1
            arr = content(kind, w, h, 1 if layout == "grey" else 3, i)
            im = Image.fromarray(arr)
            save = dict(quality=quality, optimize=optimize, **restart)
            if layout != "grey":
                save["subsampling"] = LAYOUTS[layout]
            # libjpeg only uses the fancy (interpolating) upsampling when the chroma is wider than
            # 2 samples; the parallel decoder leaves the other case to libjpeg.
            handled = layout in ("444", "grey") or (w + 1) // 2 > 2
            meta = dict(layout=layout, quality=quality, restart=rlabel, optimize=optimize, content=kind)
            add(f"{layout}_{w}x{h}_q{quality}_{kind}_{rlabel}{'_opt' if optimize else ''}", im, handled, meta, **save)
    # Larger ones: several chunks of real work each, every restart style, both table kinds.
    for j, (layout, w, h, quality, restart_index, optimize) in enumerate([
            ("420", 1500, 1100, 90, 0, False), ("420", 1203, 797, 75, 3, True), ("422", 1024, 768, 95, 0, True),
            ("444", 900, 701, 85, 1, False), ("grey", 1300, 977, 90, 0, False), ("420", 2000, 1000, 100, 4, False),
            ("444", 800, 600, 50, 0, False), ("422", 1111, 555, 30, 2, False)]):
        arr = content("photo" if j % 2 == 0 else "noise", w, h, 1 if layout == "grey" else 3, 100 + j)
        restart, rlabel = RESTARTS[restart_index]
        save = dict(quality=quality, optimize=optimize, **restart)
        if layout != "grey":
            save["subsampling"] = LAYOUTS[layout]
        meta = dict(layout=layout, quality=quality, restart=rlabel, optimize=optimize, content="large")
        add(f"large_{layout}_{w}x{h}_q{quality}_{rlabel}", Image.fromarray(arr), True, meta, **save)
    # Files the parallel decoder must leave to libjpeg.
    photo = content("photo", 120, 80, 3, 7)
    add("declined_progressive", Image.fromarray(photo), False, dict(layout="420", content="photo"), quality=80,
        progressive=True)
    add("declined_rgb_no_transform", Image.fromarray(photo), False, dict(layout="444", content="photo"), quality=80,
        keep_rgb=True, subsampling=0)
    add("declined_cmyk", Image.fromarray(content("photo", 120, 80, 4, 8), "CMYK"), False,
        dict(layout="cmyk", content="photo"), quality=80)
    add("declined_narrow_420", Image.fromarray(content("photo", 4, 40, 3, 9)), False,
        dict(layout="420", content="photo"), quality=80, subsampling=2)

    with open(os.path.join(tmp, "manifest.json"), "w") as f:
        json.dump({"cases": cases}, f, indent=1)
    try:
        os.rename(tmp, out)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
