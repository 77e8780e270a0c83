"""The synthetic observers of tests/support/synthetic_trials.py follow the curves they are drawn
from."""

from __future__ import annotations

import numpy as np

from tests.support.synthetic_trials import LEVELS, p_correct, synthetic_trials


def test_synthetic_humans_follow_their_curve():
    df = synthetic_trials(n_humans=40, seed=1)
    acc = df.groupby("level_index")["correct"].mean().to_numpy()
    assert np.all(np.abs(acc - p_correct(LEVELS)) < 0.08)
    assert df.groupby("observer_id")["image_id"].nunique().eq(200).all()
