"""Splits ISIC 2017 into two disjoint halves, A and B, by a seeded permutation of its images.

For measuring anything that looks at a clinic's own images without their labels (e.g. BatchNorm
statistics from them, `dermo soup --recompute-bn --bn-data`): adapt on A, score on B, so that no
image is both adapted on and scored. Needs numpy (in the venv scripts/setup makes: run it with
$DERMO_PYTHON).

  isic_halves.py LABELS_CSV OUT_DIR [SEED]
      writes OUT_DIR/a.csv and OUT_DIR/b.csv (image,label), 1,075 images each, for
      `dermo data import binary-csv OUT_DIR/a.csv --images IMAGES_DIR --out ...`. SEED: 0.
"""
import csv
import os
import sys

import numpy as np


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    labels, out = sys.argv[1], sys.argv[2]
    seed = int(sys.argv[3]) if len(sys.argv) == 4 else 0
    try:
        with open(labels, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        sys.exit(f"isic_halves.py: cannot read {labels}: {e.strerror}")
    if not rows or not {"image_id", "melanoma"} <= rows[0].keys():
        sys.exit(f"isic_halves.py: {labels} has no image_id and melanoma columns "
                 "(ISIC 2017's labels.csv)")
    order = np.random.default_rng(seed).permutation(len(rows))
    half = len(rows) // 2
    os.makedirs(out, exist_ok=True)
    for name, part in (("a", order[:half]), ("b", order[half:])):
        path = os.path.join(out, f"{name}.csv")
        with open(path, "w") as f:
            f.write("image,label\n")
            for i in sorted(part):
                f.write(f"{rows[i]['image_id']}.jpg,{rows[i]['melanoma']}\n")
        melanomas = sum(int(rows[i]["melanoma"]) for i in part)
        print(f"{path}: {len(part)} images, {melanomas} melanomas")


if __name__ == "__main__":
    main()
