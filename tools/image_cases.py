#!/usr/bin/env python3
"""Generates the image differential-test cases and their mistral_common 1.13.1 references.

Usage: image_cases.py OUT_DIR

Writes, deterministically, images of every supported format/mode (Pillow, numpy and a tiny PNG
writer for the 2/4/16-bit layouts Pillow cannot save) and for each one:
  NAME.<ext>      the encoded image
  NAME.rgb        uint8 [H, W, 3]: mistral_common's _convert_to_rgb(Image.open(file))
  NAME.ref.f32    float32 [3, 16*rows, 16*cols]: ImageEncoder pixels, cv2 with IPP disabled
  NAME.ipp.f32    the same with cv2's default (IPP enabled) resize
and manifest.json (a list of {name, file, width, height, rows, cols, mode}). The directory is
built under OUT_DIR.tmp-PID and renamed at the end, so concurrent callers never see half a set.
"""
import io
import json
import os
import shutil
import struct
import sys
import zlib

import cv2
import numpy as np
from PIL import Image
from mistral_common.tokens.tokenizers.image import (ImageConfig, ImageEncoder, SpecialImageIDs,
                                                    _convert_to_rgb, transform_image)

ENCODER = ImageEncoder(ImageConfig(image_patch_size=16, max_image_size=1024, spatial_merge_size=1),
                       SpecialImageIDs(img=10, img_break=12, img_end=13))


def content(w, h, channels, seed, depth=8):
    """Smooth gradients plus noise: realistic for JPEG, covers the whole value range."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    top = (1 << depth) - 1
    planes = []
    for c in range(channels):
        fx, fy = rng.uniform(0.5, 4.0, 2)
        base = 0.5 + 0.5 * np.sin(2 * np.pi * (fx * x / max(w, 1) + fy * y / max(h, 1)) + c)
        noise = rng.uniform(-0.15, 0.15, (h, w))
        planes.append(np.clip((base + noise) * top, 0, top))
    arr = np.stack(planes, axis=-1).round().astype(np.uint16 if depth == 16 else np.uint8)
    return arr[..., 0] if channels == 1 else arr


def alpha_plane(w, h, seed):
    """Alpha with fully transparent, fully opaque and partial regions."""
    a = content(w, h, 1, seed)
    a[: max(1, h // 4)] = 0
    a[-max(1, h // 4):] = 255
    return a


def raw_png(w, h, color_type, depth, rows, trns=None):
    """A minimal PNG writer (filter 0) for layouts Pillow cannot save. rows: bytes per row list."""
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    ihdr = struct.pack(">IIBBBBB", w, h, depth, color_type, 0, 0, 0)
    body = b"".join(b"\x00" + r for r in rows)
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
    if trns is not None:
        out += chunk(b"tRNS", trns)
    return out + chunk(b"IDAT", zlib.compress(body)) + chunk(b"IEND", b"")


def png16(arr, color_type, trns=None):
    h, w = arr.shape[:2]
    rows = [arr[y].astype(">u2").tobytes() for y in range(h)]
    return raw_png(w, h, color_type, 16, rows, trns)


def grey_low_bits(w, h, depth, seed):
    vals = content(w, h, 1, seed) >> (8 - depth)
    rows = []
    per = 8 // depth
    for y in range(h):
        packed = bytearray((w + per - 1) // per)
        for x in range(w):
            packed[x // per] |= int(vals[y, x]) << (8 - depth * (1 + x % per))
        rows.append(bytes(packed))
    return raw_png(w, h, 0, depth, rows)


def pil_bytes(im, fmt, **kw):
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def palette_image(w, h, seed, colors=256):
    im = Image.fromarray(content(w, h, 3, seed)).quantize(colors=colors, method=Image.Quantize.MEDIANCUT)
    return im


def cases():
    """(name, ext, bytes) for every case; sizes kept small except a few large/extreme ones."""
    out = []
    add = lambda name, ext, data: out.append((name, ext, data))
    rgba = lambda w, h, s: Image.fromarray(np.dstack([content(w, h, 3, s), alpha_plane(w, h, s + 1)]))
    # PNG, Pillow-written modes.
    for (w, h) in [(1, 1), (4, 4), (16, 16), (17, 17), (400, 300), (37, 211)]:
        add(f"png_rgb_{w}x{h}", "png", pil_bytes(Image.fromarray(content(w, h, 3, w * 7 + h)), "PNG"))
    add("png_rgba_300x200", "png", pil_bytes(rgba(300, 200, 3), "PNG"))
    add("png_rgba_1x1", "png", pil_bytes(rgba(1, 1, 4), "PNG"))
    add("png_l_120x90", "png", pil_bytes(Image.fromarray(content(120, 90, 1, 5)), "PNG"))
    add("png_la_100x80", "png", pil_bytes(Image.fromarray(np.dstack([content(100, 80, 1, 6), alpha_plane(100, 80, 7)]), "LA"), "PNG"))
    add("png_1bit_64x48", "png", pil_bytes(Image.fromarray(content(64, 48, 1, 8) > 128), "PNG"))
    add("png_p_150x100", "png", pil_bytes(palette_image(150, 100, 9), "PNG"))
    add("png_p16_90x70", "png", pil_bytes(palette_image(90, 70, 10, colors=16), "PNG"))
    add("png_p_trns_bytes_80x60", "png", pil_bytes(palette_image(80, 60, 11), "PNG", transparency=bytes(range(0, 256, 2))))
    add("png_p_trns_index_80x60", "png", pil_bytes(palette_image(80, 60, 12), "PNG", transparency=3))
    add("png_l_trns_70x50", "png", pil_bytes(Image.fromarray(content(70, 50, 1, 13)), "PNG", transparency=128))
    add("png_rgb_trns_70x50", "png", pil_bytes(Image.fromarray(content(70, 50, 3, 14) // 64 * 64), "PNG", transparency=(64, 128, 0)))
    add("png_i16_90x60", "png", pil_bytes(Image.fromarray(content(90, 60, 1, 15, depth=16) // 64), "PNG"))
    # PNG layouts Pillow cannot write: 2/4-bit grey, 16-bit RGB/RGBA/LA, 16-bit grey with tRNS.
    add("png_l2_50x40", "png", grey_low_bits(50, 40, 2, 16))
    add("png_l4_51x41", "png", grey_low_bits(51, 41, 4, 17))
    add("png_rgb16_60x40", "png", png16(content(60, 40, 3, 18, depth=16), 2))
    add("png_rgba16_60x40", "png", png16(np.dstack([content(60, 40, 3, 19, depth=16), alpha_plane(60, 40, 20).astype(np.uint16) * 257]), 6))
    add("png_la16_60x40", "png", png16(np.dstack([content(60, 40, 1, 21, depth=16), alpha_plane(60, 40, 22).astype(np.uint16) * 257]), 4))
    add("png_grey16_trns_40x30", "png", png16(content(40, 30, 1, 23, depth=16) // 512, 0, trns=struct.pack(">H", 50)))
    # Extreme sizes and aspect ratios (token grid clamps, up-sampling, large down-sampling).
    add("png_rgb_5000x3", "png", pil_bytes(Image.fromarray(content(5000, 3, 3, 24)), "PNG"))
    add("png_rgb_3x5000", "png", pil_bytes(Image.fromarray(content(3, 5000, 3, 25)), "PNG"))
    add("png_rgb_5000x1", "png", pil_bytes(Image.fromarray(content(5000, 1, 3, 26)), "PNG"))
    add("png_rgb_1024x4096", "png", pil_bytes(Image.fromarray(content(1024, 4096, 3, 27)), "PNG", compress_level=1))
    add("png_rgb_1023x1025", "png", pil_bytes(Image.fromarray(content(1023, 1025, 3, 28)), "PNG", compress_level=1))
    # JPEG: subsamplings, progressive, grey, CMYK (Adobe), odd and large sizes.
    for (w, h, sub) in [(640, 480, 2), (333, 217, 0), (257, 129, 1), (1, 1, 2), (17, 9, 2)]:
        add(f"jpeg_rgb_s{sub}_{w}x{h}", "jpg", pil_bytes(Image.fromarray(content(w, h, 3, w + h)), "JPEG", quality=90, subsampling=sub))
    add("jpeg_progressive_300x200", "jpg", pil_bytes(Image.fromarray(content(300, 200, 3, 30)), "JPEG", quality=85, progressive=True))
    add("jpeg_l_200x150", "jpg", pil_bytes(Image.fromarray(content(200, 150, 1, 31)), "JPEG", quality=90))
    add("jpeg_cmyk_160x120", "jpg", pil_bytes(Image.fromarray(content(160, 120, 4, 32), "CMYK"), "JPEG", quality=90))
    add("jpeg_rgb_2000x1500", "jpg", pil_bytes(Image.fromarray(content(2000, 1500, 3, 33)), "JPEG", quality=90))
    add("jpeg_rgb_5000x3000", "jpg", pil_bytes(Image.fromarray(content(5000, 3000, 3, 34)), "JPEG", quality=85))
    add("jpeg_rgb_4096x1024", "jpg", pil_bytes(Image.fromarray(content(4096, 1024, 3, 35)), "JPEG", quality=85))
    # WebP: lossy/lossless, with and without alpha.
    add("webp_lossy_rgb_300x200", "webp", pil_bytes(Image.fromarray(content(300, 200, 3, 40)), "WEBP", quality=80))
    add("webp_lossless_rgb_120x80", "webp", pil_bytes(Image.fromarray(content(120, 80, 3, 41)), "WEBP", lossless=True))
    add("webp_lossy_rgba_200x150", "webp", pil_bytes(rgba(200, 150, 42), "WEBP", quality=80))
    add("webp_lossless_rgba_121x81", "webp", pil_bytes(rgba(121, 81, 43), "WEBP", lossless=True))
    add("webp_lossy_rgb_1x1", "webp", pil_bytes(Image.fromarray(content(1, 1, 3, 44)), "WEBP", quality=80))
    # GIF: palettes of different sizes, transparency, grey (Pillow's "L" path), interlace.
    add("gif_p_200x150", "gif", pil_bytes(palette_image(200, 150, 50), "GIF"))
    add("gif_p16_100x70", "gif", pil_bytes(palette_image(100, 70, 51, colors=16), "GIF"))
    add("gif_trns_120x90", "gif", pil_bytes(palette_image(120, 90, 52), "GIF", transparency=5))
    add("gif_l_90x60", "gif", pil_bytes(Image.fromarray(content(90, 60, 1, 53)), "GIF"))
    add("gif_noninterlaced_64x64", "gif", pil_bytes(palette_image(64, 64, 54), "GIF", interlace=False))
    frames = [palette_image(50, 40, 55), palette_image(50, 40, 56)]
    add("gif_animated_50x40", "gif", pil_bytes(frames[0], "GIF", save_all=True, append_images=frames[1:]))
    # BMP: 24-bit, 8-bit grey and palette, 1-bit, 32-bit (BI_RGB: alpha ignored).
    add("bmp_rgb_123x77", "bmp", pil_bytes(Image.fromarray(content(123, 77, 3, 60)), "BMP"))
    add("bmp_l_64x33", "bmp", pil_bytes(Image.fromarray(content(64, 33, 1, 61)), "BMP"))
    add("bmp_p_65x31", "bmp", pil_bytes(palette_image(65, 31, 62), "BMP"))
    add("bmp_1bit_33x17", "bmp", pil_bytes(Image.fromarray(content(33, 17, 1, 63) > 100), "BMP"))
    add("bmp_rgba_40x30", "bmp", pil_bytes(rgba(40, 30, 64), "BMP"))
    return [c for c in out if c is not None]


def reference(path):
    im = Image.open(path)
    rgb = np.asarray(_convert_to_rgb(im), dtype=np.uint8)
    w_tok, h_tok = ENCODER._image_to_num_tokens(im)
    size = (16 * w_tok, 16 * h_tok)
    cv2.ipp.setUseIPP(False)
    exact = transform_image(im, size).astype(np.float32)
    cv2.ipp.setUseIPP(True)
    ipp = transform_image(im, size).astype(np.float32)
    return im, rgb, h_tok, w_tok, exact, ipp


def main():
    out_dir = sys.argv[1]
    if os.path.exists(os.path.join(out_dir, "manifest.json")):
        return 0
    tmp = f"{out_dir}.tmp-{os.getpid()}"
    os.makedirs(tmp, exist_ok=True)
    manifest = []
    for name, ext, data in cases():
        path = os.path.join(tmp, f"{name}.{ext}")
        with open(path, "wb") as f:
            f.write(data)
        im, rgb, rows, cols, exact, ipp = reference(path)
        rgb.tofile(os.path.join(tmp, f"{name}.rgb"))
        np.ascontiguousarray(exact).tofile(os.path.join(tmp, f"{name}.ref.f32"))
        np.ascontiguousarray(ipp).tofile(os.path.join(tmp, f"{name}.ipp.f32"))
        manifest.append({"name": name, "file": f"{name}.{ext}", "width": im.size[0], "height": im.size[1],
                         "rows": rows, "cols": cols, "mode": im.mode})
    with open(os.path.join(tmp, "manifest.json"), "w") as f:
        json.dump({"opencv": cv2.__version__, "ipp": cv2.ipp.getIppVersion(), "cases": manifest}, f, indent=1)
    try:
        os.rename(tmp, out_dir)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
