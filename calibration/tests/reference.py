"""Reference values for the dermo-calibration tests.

Run once with the project venv (`$DERMO_PYTHON calibration/tests/reference.py`); the numbers it prints
are hard-coded in the Rust tests next to a comment naming the call that produced them. The fixed arrays
here are the same as in `calibration/tests/fixtures.rs`.
"""
import numpy as np
from scipy import stats
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax
from sklearn import metrics

# Ten samples, four classes; rows sum to 1. Rows 2/3 and 6/7 tie on some columns on purpose.
PROBS = np.array([
    [0.70, 0.10, 0.10, 0.10],
    [0.20, 0.50, 0.20, 0.10],
    [0.40, 0.40, 0.10, 0.10],
    [0.40, 0.30, 0.20, 0.10],
    [0.10, 0.10, 0.60, 0.20],
    [0.25, 0.25, 0.25, 0.25],
    [0.10, 0.20, 0.30, 0.40],
    [0.10, 0.20, 0.30, 0.40],
    [0.05, 0.05, 0.10, 0.80],
    [0.30, 0.10, 0.50, 0.10],
])
LABELS = np.array([0, 1, 1, 0, 2, 3, 3, 2, 3, 0])
PRED = PROBS.argmax(axis=1)  # ties go to the first maximum, as in the Rust code

print("predicted", PRED.tolist())
print("confusion_matrix", metrics.confusion_matrix(LABELS, PRED, labels=[0, 1, 2, 3]).tolist())
print("accuracy_score", metrics.accuracy_score(LABELS, PRED))
print("balanced_accuracy_score", metrics.balanced_accuracy_score(LABELS, PRED))
p, r, f, s = metrics.precision_recall_fscore_support(LABELS, PRED, labels=[0, 1, 2, 3], zero_division=0)
print("precision", p.tolist())
print("recall", r.tolist())
print("f1", f.tolist())
print("f1_score macro", metrics.f1_score(LABELS, PRED, average="macro", zero_division=0))
for c in range(4):
    y = (LABELS == c).astype(int)
    print(f"roc_auc_score class {c}", metrics.roc_auc_score(y, PROBS[:, c]))
print("roc_auc_score ovr macro", metrics.roc_auc_score(LABELS, PROBS, multi_class="ovr", average="macro"))
fpr, tpr, thr = metrics.roc_curve((LABELS == 1).astype(int), PROBS[:, 1], drop_intermediate=False)
print("roc_curve class 1 fpr", fpr.tolist())
print("roc_curve class 1 tpr", tpr.tolist())
print("roc_curve class 1 thresholds", thr.tolist())

# Malignant group = classes {0, 1}: summed probability, sensitivity/specificity at 0.5.
score = PROBS[:, 0] + PROBS[:, 1]
truth = np.isin(LABELS, [0, 1]).astype(int)
pred = (score >= 0.5).astype(int)
tn, fp, fn, tp = metrics.confusion_matrix(truth, pred).ravel()
print("group score", score.tolist())
print("group at 0.5: sensitivity", tp / (tp + fn), "specificity", tn / (tn + fp))
print("group roc_auc_score", metrics.roc_auc_score(truth, score))

# Temperature scaling: minimise the mean NLL of softmax(logits / T) over log T.
LOGITS = np.array([
    [2.0, 0.5, -1.0],
    [1.5, 1.4, 0.0],
    [0.2, 2.5, -0.5],
    [3.0, -1.0, 0.5],
    [-0.5, 0.0, 1.0],
    [1.0, 2.0, 0.0],
    [4.0, 0.0, 0.0],
    [0.0, 3.0, 1.0],
])
LOGIT_LABELS = np.array([0, 1, 1, 2, 2, 0, 0, 1])


def nll(log_t):
    return -log_softmax(LOGITS / np.exp(log_t), axis=1)[np.arange(len(LOGITS)), LOGIT_LABELS].mean()


res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded", options={"xatol": 1e-10})
print("minimize_scalar temperature", np.exp(res.x), "nll", res.fun, "nll at T=1", nll(0.0))

# int8 entropy calibration (TensorRT / MXNet `_get_optimal_threshold`, on a magnitude histogram).
def smooth(p, eps=0.0001):
    is_zeros = (p == 0).astype(np.float64)
    is_nonzeros = (p != 0).astype(np.float64)
    n_zeros = is_zeros.sum()
    n_nonzeros = p.size - n_zeros
    eps1 = eps * n_zeros / n_nonzeros
    return p.astype(np.float64) + eps * is_zeros - eps1 * is_nonzeros


def entropy_threshold(hist, width, num_quantized_bins):
    best, best_i = np.inf, None
    for i in range(num_quantized_bins, hist.size + 1):
        sliced = hist[:i].astype(np.float64)
        p = sliced.copy()
        p[-1] += hist[i:].sum()
        nonzero = p != 0
        merged = i // num_quantized_bins
        q = np.zeros(i)
        for j in range(num_quantized_bins):
            start = j * merged
            stop = i if j == num_quantized_bins - 1 else start + merged
            norm = nonzero[start:stop].sum()
            if norm:
                q[start:stop] = sliced[start:stop].sum() / norm
        q[~nonzero] = 0
        d = stats.entropy(smooth(p), smooth(q))
        if d < best:
            best, best_i = d, i
    return best_i * width, best


# A half-Gaussian magnitude histogram on [0, 16] (512 bins of width 1/32) with one outlier at 16; the
# Rust test builds the same counts by observing each bin's centre `count` times.
width = 16.0 / 512
centres = (np.arange(512) + 0.5) * width
hist = np.floor(1e4 * np.exp(-0.5 * centres**2)).astype(np.int64)
hist[-1] += 1
print("entropy threshold (512 bins, 128 quantized)", entropy_threshold(hist, width, 128))
print("entropy threshold (512 bins, 32 quantized)", entropy_threshold(hist, width, 32))
cdf = np.cumsum(hist) / hist.sum()
print("total", hist.sum(), "99.9th percentile bin", np.searchsorted(cdf, 0.999))
