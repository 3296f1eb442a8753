"""The spread `bench` prints beside each median is one an outlier does not set."""

from __future__ import annotations

import pytest
from optiplan.planner.report.gate import half_iqr


def test_one_outlier_does_not_set_the_spread_beside_the_median():
    samples = [6.0, 6.1, 5.9, 6.0, 6.2, 5.8, 6.0, 180.0]  # one stalled token among eight
    assert half_iqr(samples) == pytest.approx(0.075)  # about 1% of the 6.0 median; the stdev is 2.2x the mean
    assert half_iqr([1.0, 2.0, 3.0, 4.0, 5.0]) == pytest.approx(1.0)
