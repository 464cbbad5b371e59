"""AudioSet's evaluation metrics in numpy: mean average precision, mean ROC AUC and d' over classes, and the
label-frequency baseline. No scipy or scikit-learn: the normal quantile comes from ``statistics.NormalDist``."""
from __future__ import annotations

import math
import statistics

import numpy as np


def _tie_groups(sorted_scores: np.ndarray) -> np.ndarray:
    """Index of the last element of each run of equal values in a sorted array."""
    return np.flatnonzero(np.r_[sorted_scores[1:] != sorted_scores[:-1], True])


def average_precision(scores: np.ndarray, target: np.ndarray) -> float:
    """Average precision of one class (scikit-learn's definition: sum over thresholds of the recall gained
    times the precision there; tied scores form one threshold). NaN when there is no positive."""
    order = np.argsort(-scores, kind='stable')
    s, t = scores[order], target[order] > 0
    positives = t.sum()
    if positives == 0:
        return math.nan
    ends = _tie_groups(-s)
    tp = np.cumsum(t)[ends]
    precision = tp / (ends + 1)
    recall_gain = np.diff(np.r_[0, tp]) / positives
    return float((recall_gain * precision).sum())


def roc_auc(scores: np.ndarray, target: np.ndarray) -> float:
    """Area under the ROC curve of one class: the probability that a positive outscores a negative, ties
    counting half (Mann-Whitney U with average ranks). NaN without both positives and negatives."""
    t = target > 0
    pos, neg = int(t.sum()), int((~t).sum())
    if pos == 0 or neg == 0:
        return math.nan
    order = np.argsort(scores, kind='stable')
    s = scores[order]
    ends = _tie_groups(s)
    starts = np.r_[0, ends[:-1] + 1]
    avg_rank = (starts + ends) / 2.0 + 1.0  # 1-based mean rank of each tie group
    ranks = np.empty(len(s))
    ranks[order] = np.repeat(avg_rank, ends - starts + 1)
    return float((ranks[t].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def d_prime(auc: float) -> float:
    """d' = sqrt(2) * Phi^-1(AUC), the separation of two unit normals that gives this AUC (as AudioSet's
    papers report it, from the mean AUC).

    >>> round(d_prime(0.959), 4)
    2.4596
    """
    if not 0.0 < auc < 1.0:
        return math.inf if auc >= 1.0 else -math.inf
    return math.sqrt(2.0) * statistics.NormalDist().inv_cdf(auc)


def evaluate(scores: np.ndarray, targets: np.ndarray) -> dict:
    """mAP and mean AUC over the classes with at least one positive and one negative in ``targets``
    ([n, C] each), and d' of the mean AUC. ``classes`` says how many classes were averaged."""
    aps, aucs = [], []
    for c in range(targets.shape[1]):
        t = targets[:, c]
        if 0 < (t > 0).sum() < len(t):
            aps.append(average_precision(scores[:, c], t))
            aucs.append(roc_auc(scores[:, c], t))
    if not aps:
        raise ValueError('no class has both positives and negatives: nothing to evaluate')
    auc = float(np.mean(aucs))
    return {'mAP': float(np.mean(aps)), 'AUC': auc, 'd_prime': d_prime(auc), 'classes': len(aps)}


def frequency_baseline(train_targets: np.ndarray, n: int, weights: np.ndarray | None = None) -> np.ndarray:
    """[n, C] scores that give every segment each class's frequency in the training targets: the ranking a
    model that learnt nothing about the audio would make (per class, every segment ties: AP = the class's
    prevalence, AUC = 0.5)."""
    w = np.ones(len(train_targets)) if weights is None else np.nan_to_num(weights)
    freq = (train_targets * w[:, None]).sum(axis=0) / max(w.sum(), 1e-12)
    return np.broadcast_to(freq.astype(np.float32), (n, train_targets.shape[1]))
