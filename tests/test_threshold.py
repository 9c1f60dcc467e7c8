"""components/threshold.py: the threshold with the fewest wrong eval clips, ties (within one clip) broken
towards the preferred one."""

import pytest

from components import threshold
from model import features


def _points(errors_by_threshold):
    return [{"threshold": t, "errors": e} for t, e in errors_by_threshold]


def test_fewest_errors_win_even_far_from_the_preferred_threshold():
    chosen = threshold.choose_threshold(_points([(0.2, 9), (0.5, 6), (0.9, 2), (0.95, 3)]))
    assert chosen["threshold"] == 0.9


def test_among_ties_the_one_nearest_the_preferred_threshold():
    ties = _points([(t / 100, 0) for t in range(30, 100, 5)] + [(0.1, 5)])
    assert threshold.choose_threshold(ties)["threshold"] == pytest.approx(features.PREFERRED_THRESHOLD)
    assert threshold.choose_threshold(ties, preferred=0.52)["threshold"] == pytest.approx(0.5)


def test_one_clip_alone_does_not_move_the_threshold():
    # One loud non-call clip scores 0.93: only thresholds above it get every clip right.
    points = _points([(0.3, 3), (0.5, 1), (0.7, 1), (0.95, 0), (0.99, 2)])
    assert threshold.choose_threshold(points)["threshold"] == 0.5
    assert threshold.choose_threshold(points, tie_clips=0)["threshold"] == 0.95
