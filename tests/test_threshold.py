"""components/threshold.py: the threshold of best F1 on eval, ties broken towards the preferred one."""

import pytest

from components import threshold
from model import features


def _points(f1_by_threshold):
    return [{"threshold": t, "precision": 1.0, "recall": 1.0, "f1": f} for t, f in f1_by_threshold]


def test_best_f1_wins_even_far_from_the_preferred_threshold():
    chosen = threshold.best_f1_threshold(_points([(0.2, 0.90), (0.4, 0.97), (0.9, 0.95)]))
    assert chosen["threshold"] == 0.4


def test_among_ties_the_one_nearest_the_preferred_threshold():
    ties = _points([(t / 100, 1.0) for t in range(30, 100, 5)] + [(0.1, 0.8)])
    assert threshold.best_f1_threshold(ties)["threshold"] == pytest.approx(features.PREFERRED_THRESHOLD)
    assert threshold.best_f1_threshold(ties, preferred=0.52)["threshold"] == pytest.approx(0.5)
