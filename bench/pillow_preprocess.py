"""Pillow + numpy doing the work of dermo's preprocessing, for scripts/bench.

Decode, apply EXIF orientation, convert to RGB, resize the whole frame to SxS with Pillow's
BILINEAR filter, normalize (x - 127) / 128 and lay out as NCHW float32: the same steps as
`dermo_model::preprocess::preprocess_file`, over the same first N .jpg files in name order.
Prints `images_per_s=<x> images=<n>` for the best of R timed passes after one untimed pass.

With --compare FILE (the Rust tensor of the first image, raw little-endian f32) it also prints
how far the two pipelines' pixels are apart, in 8-bit levels.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

MEAN = 127.0
STD = 128.0


def preprocess(path: Path, size: int) -> np.ndarray:
    with Image.open(path) as image:
        image = ImageOps.exif_transpose(image).convert("RGB")
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    pixels = np.asarray(image, dtype=np.float32)
    return np.ascontiguousarray(((pixels - MEAN) / STD).transpose(2, 0, 1)[None])


def one_pass(paths: list[Path], size: int) -> float:
    checksum = 0.0
    for path in paths:
        tensor = preprocess(path, size)
        checksum += float(tensor.flat[tensor.size // 2])
    return checksum


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image_dir", type=Path, help="folder of .jpg images")
    parser.add_argument("--count", type=int, default=2000, help="first N images in name order")
    parser.add_argument("--size", type=int, default=256, help="output side S")
    parser.add_argument("--repeat", type=int, default=3, help="timed passes; the best counts")
    parser.add_argument("--compare", type=Path, help="Rust tensor of the first image (raw f32)")
    args = parser.parse_args()

    paths = sorted(args.image_dir.glob("*.jpg"))[: args.count]
    if not paths:
        print(f"pillow_preprocess: no .jpg images in {args.image_dir}", file=sys.stderr)
        return 1

    if args.compare:
        theirs = np.fromfile(args.compare, dtype="<f4")
        ours = preprocess(paths[0], args.size).ravel()
        if theirs.shape != ours.shape:
            print(f"pillow_preprocess: {args.compare} holds {theirs.size} floats, expected {ours.size}",
                  file=sys.stderr)
            return 1
        levels = np.abs(theirs - ours) * STD
        print(f"mean_abs_levels={levels.mean():.2f} max_abs_levels={levels.max():.0f}")

    one_pass(paths, args.size)  # warm the page cache
    best = float("inf")
    for _ in range(args.repeat):
        start = time.perf_counter()
        one_pass(paths, args.size)
        best = min(best, time.perf_counter() - start)
    print(f"images_per_s={len(paths) / best:.1f} images={len(paths)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
