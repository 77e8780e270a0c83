"""Synthetic trial tables of the paradigm (binary, 11 levels) for the analysis tests.

Observers are drawn from known logistic psychometric functions, so every analysis result
has a right answer. Rows follow experiment.schema.TRIAL_COLUMNS; labelled synthetic.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from experiment.schema import TRIAL_COLUMNS

LEVELS = 10 ** np.linspace(0, 2, 11)


def p_correct(levels, threshold=10.0, width=0.25, lapse=0.05, guess=0.5):
    """Logistic ψ on log10(level): (L,) probabilities."""
    x = np.log10(levels)
    return guess + (1 - guess - lapse) / (1 + np.exp(-(x - np.log10(threshold)) / width))


def synthetic_trials(n_humans=20, n_images=200, models=None, seed=0, human_threshold=10.0,
                     human_width=0.25, observer_type="human", rt_ms=450.0) -> pd.DataFrame:
    """Humans see each image once at a Latin-square level; each model sees every stimulus."""
    rng = np.random.default_rng(seed)
    models = models or {}
    rows = []
    images = [f"synthetic_{i:04d}" for i in range(n_images)]
    ph = p_correct(LEVELS, human_threshold, human_width)
    for h in range(n_humans):
        lvl = (np.arange(n_images) + h) % len(LEVELS)
        correct = rng.random(n_images) < ph[lvl]
        for i in range(n_images):
            rows.append({"observer_id": f"synthetic-{h:02d}", "observer_type": observer_type,
                         "runner": "simulation", "image_id": images[i],
                         "stimulus_id": f"{images[i]}_L{lvl[i]}",
                         "category": "animal" if i % 2 else "non-animal",
                         "level_index": lvl[i], "level_percent": LEVELS[lvl[i]],
                         "correct": int(correct[i]), "timeout": 0, "practice": 0,
                         "rt_ms": rt_ms, "trial": i + 1})
    for name, (threshold, width) in models.items():
        pm = p_correct(LEVELS, threshold, width, lapse=0.0)
        correct = rng.random((n_images, len(LEVELS))) < pm
        for i in range(n_images):
            for j in range(len(LEVELS)):
                rows.append({"observer_id": name, "observer_type": "model",
                             "runner": "model", "model_name": name, "image_id": images[i],
                             "stimulus_id": f"{images[i]}_L{j}",
                             "category": "animal" if i % 2 else "non-animal",
                             "level_index": j, "level_percent": LEVELS[j],
                             "correct": int(correct[i, j]), "timeout": 0, "practice": 0,
                             "rt_ms": np.nan, "trial": i * len(LEVELS) + j + 1})
    df = pd.DataFrame(rows).reindex(columns=list(TRIAL_COLUMNS))
    df["response"] = np.where(df["correct"] == 1, df["category"],
                              np.where(df["category"] == "animal", "non-animal", "animal"))
    return df


def write_synthetic(path, **kwargs):
    """Write a synthetic table as a suite CSV and return the path."""
    synthetic_trials(**kwargs).to_csv(path, index=False)
    return path


def with_analysis_columns(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of a suite trial table with the columns ``analysis.load`` adds when it reads one
    (dataset, level, guess, fit_scale, increasing), for code that takes loaded trials."""
    df = df.copy()
    df["dataset"], df["level"] = "animal-vs-non-animal", df["level_percent"]
    df["guess"], df["fit_scale"], df["increasing"] = 0.5, "log10", True
    return df
