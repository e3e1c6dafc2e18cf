"""Ranks the same model outputs by other scores than the device's: which score of the seven class
probabilities separates melanoma on another clinic's images, and what it does on HAM10000.

Reads the predictions tables `dermo eval --out` writes (docs/evaluation.md): one of an external
set (melanoma versus the rest) and one of a HAM10000 split. Prints, per score, the external
set's melanoma AUC with a 95% bootstrap interval over images (1,000 resamples, seed 0) and the
specificity at 0.90 melanoma sensitivity, then on the HAM10000 split the melanoma-vs-rest AUC,
the malignant-vs-benign AUC and the specificity at 0.95 malignant sensitivity (the refer
threshold's target), and last the split's balanced accuracy of the top class. Needs numpy and
scikit-learn (in the venv scripts/setup makes: run it with $DERMO_PYTHON).

  melanoma_scores.py EXTERNAL_PREDICTIONS_CSV HAM_PREDICTIONS_CSV

An ensemble: join several models' tables of the same images with '+' (A.csv+B.csv+C.csv, in the
same model order for both arguments); their probabilities are averaged image by image.

docs/results.md, "Which score ranks melanoma", has the figures.
"""
import csv
import sys

import numpy as np
from sklearn.metrics import roc_auc_score as auc

CLASSES = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
MALIGNANT = [CLASSES.index(c) for c in ("akiec", "bcc", "mel")]
MEL, NV, BKL = (CLASSES.index(c) for c in ("mel", "nv", "bkl"))


def log(p):
    return np.log(np.clip(p, 1e-7, 1.0))


# Each score maps the [N, 7] calibrated probabilities to one number per image, higher = more
# suspicious. The log-odds are independent of the temperature.
SCORES = {
    "p(mel) (dermo eval's AUC)": lambda p: p[:, MEL],
    "p(malignant) (the referral score)": lambda p: p[:, MALIGNANT].sum(1),
    "log p(mel) / p(nv)": lambda p: log(p[:, MEL]) - log(p[:, NV]),
    "log p(mel) / (p(nv) + p(bkl))": lambda p: log(p[:, MEL]) - log(p[:, NV] + p[:, BKL]),
    "log p(malignant) / p(nv)": lambda p: log(p[:, MALIGNANT].sum(1)) - log(p[:, NV]),
}


def one_table(path):
    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        sys.exit(f"melanoma_scores.py: cannot read {path}: {e.strerror}")
    if not rows or "p_mel" not in rows[0]:
        sys.exit(f"melanoma_scores.py: {path} is not a dermo predictions table "
                 "with p_<class> columns")
    return rows


def table(paths, truth):
    """Probabilities [N, 7] (averaged over the '+'-joined tables) and the truth of each image."""
    tables = [one_table(p) for p in paths.split("+")]
    ids = [r["image_id"] for r in tables[0]]
    for i, (path, rows) in enumerate(zip(paths.split("+"), tables)):
        by_id = {r["image_id"]: r for r in rows}
        if sorted(by_id) != sorted(ids):
            sys.exit(f"melanoma_scores.py: {path} holds other images than {paths.split('+')[0]}")
        tables[i] = [by_id[j] for j in ids]  # in the first table's order
    probs = np.mean([[[float(r["p_" + c]) for c in CLASSES] for r in rows] for rows in tables],
                    axis=0)
    return probs, np.array([truth(r) for r in tables[0]])


def specificity_at(y, s, sensitivity):
    """Specificity at the highest threshold that refers at least `sensitivity` of the positives."""
    positives = np.sort(s[y == 1])
    threshold = positives[int(np.floor((1 - sensitivity) * len(positives)))]
    return float((s[y == 0] < threshold).mean())


def interval(y, s, resamples=1000, seed=0):
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        i = rng.integers(0, len(y), len(y))
        if 0 < y[i].sum() < len(i):
            draws.append(auc(y[i], s[i]))
    return np.percentile(draws, [2.5, 97.5])


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    ext_p, ext_y = table(sys.argv[1], lambda r: int(r["melanoma"]))
    ham_p, ham_label = table(sys.argv[2], lambda r: CLASSES.index(r["label"]))
    ham_mel = (ham_label == MEL).astype(int)
    ham_malignant = np.isin(ham_label, MALIGNANT).astype(int)
    print("| score | external AUC [95% CI] | external spec. at 0.90 mel sens. "
          "| HAM mel AUC | HAM malignant AUC | HAM spec. at 0.95 malignant sens. |")
    print("|---|---|---|---|---|---|")
    for name, score in SCORES.items():
        e, h = score(ext_p), score(ham_p)
        lo, hi = interval(ext_y, e)
        print(f"| {name} | {auc(ext_y, e):.3f} [{lo:.3f}, {hi:.3f}] "
              f"| {specificity_at(ext_y, e, 0.90):.3f} "
              f"| {auc(ham_mel, h):.3f} | {auc(ham_malignant, h):.3f} "
              f"| {specificity_at(ham_malignant, h, 0.95):.3f} |")
    predicted = ham_p.argmax(1)
    recalls = [(predicted[ham_label == c] == c).mean() for c in np.unique(ham_label)]
    print(f"\nHAM balanced accuracy (top class): {np.mean(recalls):.4f}")


if __name__ == "__main__":
    main()
