#!/usr/bin/env python3
"""Reference side of the preprocessing benchmark (bench/image).

Usage: image_bench_ref.py FILE [--runs N]

Creates FILE if missing (a deterministic 4032x3024 photo-like JPEG, quality 90, 4:2:0, written
with Pillow), then times mistral_common 1.13.1's path on it: Image.open + ImageEncoder (token
grid, to-RGB, cv2 INTER_CUBIC with the wheel's default IPP, float32 normalize). Prints
`ref_ms=<median> min_ms=<min>` for the whole path.
"""
import os
import sys
import time

import numpy as np
from PIL import Image

try:
    from mistral_common.protocol.instruct.chunk import ImageChunk
    from mistral_common.tokens.tokenizers.image import ImageConfig, ImageEncoder, SpecialImageIDs
except ImportError:  # a machine without the test venv: time a verbatim copy of the same steps
    ImageChunk = None


def make_photo(path, w=4032, h=3024):
    rng = np.random.RandomState(1234)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    planes = []
    for c in range(3):
        fx, fy = rng.uniform(1, 8, 2)
        base = 128 + 90 * np.sin(2 * np.pi * (fx * x / w + fy * y / h) + c) * np.cos(2 * np.pi * fy * x / w)
        planes.append(base + rng.normal(0, 12, (h, w)))
    arr = np.clip(np.stack(planes, -1), 0, 255).astype(np.uint8)
    Image.fromarray(arr).save(path, "JPEG", quality=90, subsampling=2)


def inline_encoder(im):
    """ImageEncoder.__call__ + transform_image + normalize of mistral_common 1.13.1, step for step."""
    import cv2
    w, h = im.size
    ratio = max(h / 1024, w / 1024)
    if ratio > 1:
        w, h = max(round(w / ratio), 1), max(round(h / ratio), 1)
    cols, rows = (w - 1) // 16 + 1, (h - 1) // 16 + 1
    if im.mode != "RGB":
        raise SystemExit("inline path handles RGB only")
    x = cv2.resize(np.array(im, dtype=np.float32), (16 * cols, 16 * rows), interpolation=cv2.INTER_CUBIC)
    x = np.divide(x, np.float32(255.0), dtype=x.dtype)
    x -= np.asarray((0.48145466, 0.4578275, 0.40821073), dtype=x.dtype)
    x /= np.asarray((0.26862954, 0.26130258, 0.27577711), dtype=x.dtype)
    return x.transpose(2, 0, 1)


def main():
    path = sys.argv[1]
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 5
    if not os.path.exists(path):
        make_photo(path)
    if ImageChunk is not None:
        encoder = ImageEncoder(ImageConfig(image_patch_size=16, max_image_size=1024, spatial_merge_size=1),
                               SpecialImageIDs(img=10, img_break=12, img_end=13))
        run, how = (lambda: encoder(ImageChunk(image=Image.open(path))).image), "mistral_common 1.13.1 ImageEncoder"
    else:
        run, how = (lambda: inline_encoder(Image.open(path))), "inline copy of mistral_common 1.13.1's steps"
    times = []
    for _ in range(runs + 1):
        t0 = time.perf_counter()
        image = run()
        times.append((time.perf_counter() - t0) * 1e3)
    times = times[1:]  # the first run warms imports and caches
    print(f"ref_ms={np.median(times):.2f} min_ms={min(times):.2f} shape={tuple(image.shape)} path={how}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
