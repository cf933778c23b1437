#!/usr/bin/env python3
"""End-to-end check of `pixtral preprocess` against mistral_common 1.13.1.

Usage: image_cli_check.py PIXTRAL_BINARY WORK_DIR

Writes an RGBA PNG and a JPEG (Pillow), runs `pixtral preprocess --image F --out F.safetensors`,
and compares the `pixels` tensor with mistral_common's ImageEncoder (cv2 with IPP disabled) and
the printed grid with the encoder's token grid. Exit status 1 on any mismatch.
"""
import os
import re
import subprocess
import sys

import cv2
import numpy as np
from PIL import Image
from safetensors.numpy import load_file
from mistral_common.tokens.tokenizers.image import (ImageConfig, ImageEncoder, SpecialImageIDs,
                                                    transform_image)


def main():
    binary, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    rng = np.random.RandomState(7)
    encoder = ImageEncoder(ImageConfig(image_patch_size=16, max_image_size=1024, spatial_merge_size=1),
                           SpecialImageIDs(img=10, img_break=12, img_end=13))
    images = {
        "cli_rgba.png": Image.fromarray(rng.randint(0, 256, (211, 333, 4), dtype=np.uint8)),
        "cli_rgb.jpg": Image.fromarray(rng.randint(0, 256, (1500, 2100, 3), dtype=np.uint8)),
    }
    cv2.ipp.setUseIPP(False)
    failures = 0
    for name, im in images.items():
        path = os.path.join(work, name)
        im.save(path)
        out = path + ".safetensors"
        run = subprocess.run([binary, "preprocess", "--image", path, "--out", out], capture_output=True, text=True)
        if run.returncode != 0:
            print(f"{name}: pixtral preprocess failed: {run.stderr}")
            failures += 1
            continue
        ref_im = Image.open(path)
        cols, rows = encoder._image_to_num_tokens(ref_im)
        ref = transform_image(ref_im, (16 * cols, 16 * rows))
        ours = load_file(out)["pixels"]
        grid = re.search(r"grid (\d+) rows x (\d+) cols", run.stdout)
        ok_grid = grid is not None and (int(grid[1]), int(grid[2])) == (rows, cols)
        ok_pixels = ours.shape == ref.shape and ours.dtype == np.float32 and float(np.abs(ours - ref).max()) <= 1e-4
        print(f"{name}: grid {rows}x{cols} {'ok' if ok_grid else 'MISMATCH: ' + run.stdout.strip()}, "
              f"pixels {ours.shape} {'ok' if ok_pixels else 'MISMATCH'}")
        failures += (not ok_grid) + (not ok_pixels)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
