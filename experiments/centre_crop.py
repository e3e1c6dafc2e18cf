"""Centre-crop every image of a data table to a fraction of each side (lossless PNG out).

Measures how the lesion's share of the frame moves a model's figures (docs/results.md, "Centre
crops"). Needs Pillow (in the venv scripts/setup makes: run it with $DERMO_PYTHON).

  centre_crop.py isic LABELS_CSV IMAGES_DIR FRACTION OUT [WxH]
      ISIC 2017 layout in; OUT/images/<id>.png and OUT/table.csv (image,label) out, for
      `dermo data import binary-csv OUT/table.csv --images OUT/images --out ...`. With WxH the
      crop is then resized to W×H pixels (box filter: each output pixel the mean of the input
      pixels it covers), e.g. 200x150 to give the images HAM10000's resolution.
  centre_crop.py manifest MANIFEST_CSV FRACTION OUT
      a dermo manifest (e.g. a split's val.csv) in; OUT/images/<id>.png and OUT/manifest.csv out,
      with paths, sha256 and sizes of the new files (dermo's caches key on the sha256), for
      `dermo eval MODEL --data OUT/manifest.csv`.

FRACTION 1.0 writes the same pixels as PNG: the control, since the figures also move with the
JPEG decoder (Pillow's here, the image crate's in dermo).
"""
import csv
import hashlib
import os
import sys

from PIL import Image


def crop(src, dst, fraction, size=None):
    """Writes the centre crop of `src` to `dst`, resized to `size` if given, and returns its
    (width, height)."""
    img = Image.open(src).convert("RGB")
    w, h = img.size
    cw, ch = round(w * fraction), round(h * fraction)
    left, top = (w - cw) // 2, (h - ch) // 2
    out = img.crop((left, top, left + cw, top + ch))
    if size is not None:
        out = out.resize(size, Image.BOX)
    out.save(dst, compress_level=1)
    return out.size


def fraction_arg(text):
    f = float(text)
    if not 0.0 < f <= 1.0:
        sys.exit(f"centre_crop.py: FRACTION must be in (0, 1], got {text}")
    return f


def size_arg(text):
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        sys.exit(f"centre_crop.py: WxH must be two positive integers like 200x150, got {text}")
    if w <= 0 or h <= 0:
        sys.exit(f"centre_crop.py: WxH must be two positive integers like 200x150, got {text}")
    return w, h


def isic(labels, images, fraction, out, size=None):
    os.makedirs(f"{out}/images", exist_ok=True)
    with open(labels, newline="") as fh:
        rows = list(csv.DictReader(fh))
    with open(f"{out}/table.csv", "w", newline="") as fh:
        table = csv.writer(fh)
        table.writerow(["image", "label"])
        for r in rows:
            name = r["image_id"] + ".png"
            crop(f"{images}/{r['image_id']}.jpg", f"{out}/images/{name}", fraction, size)
            table.writerow([name, r["melanoma"]])
    print(f"wrote {len(rows)} images and {out}/table.csv")


def manifest(path, fraction, out):
    os.makedirs(f"{out}/images", exist_ok=True)
    base = os.path.dirname(os.path.abspath(path))
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        fields, rows = reader.fieldnames, list(reader)
    with open(f"{out}/manifest.csv", "w", newline="") as fh:
        table = csv.DictWriter(fh, fieldnames=fields)
        table.writeheader()
        for r in rows:
            src = os.path.join(base, r["path"])
            stem = os.path.splitext(os.path.basename(src))[0]
            dst = os.path.abspath(f"{out}/images/{stem}.png")
            r["width"], r["height"] = crop(src, dst, fraction)
            with open(dst, "rb") as img:
                r["sha256"] = hashlib.sha256(img.read()).hexdigest()
            r["path"] = dst
            table.writerow(r)
    print(f"wrote {len(rows)} images and {out}/manifest.csv")


def main(args):
    if len(args) in (5, 6) and args[0] == "isic":
        size = size_arg(args[5]) if len(args) == 6 else None
        isic(args[1], args[2], fraction_arg(args[3]), args[4], size)
    elif len(args) == 4 and args[0] == "manifest":
        manifest(args[1], fraction_arg(args[2]), args[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except (OSError, KeyError) as e:
        # A missing or unreadable file names itself; a table without the expected column names it.
        what = f"{e.strerror}: {e.filename}" if isinstance(e, OSError) else f"no column {e}"
        sys.exit(f"centre_crop.py: {what}")
