"""The report at the paper's scale (84 models): every figure stays a bounded size with a
bounded legend — the named models and one entry per model class, never one per model."""

import numpy as np
import pandas as pd
from PIL import Image

from analysis import figures, figures_detail
from analysis.report import render_report
from tests.support.synthetic_trials import synthetic_trials

N_MODELS = 84
MAX_LEGEND = 1 + figures.MAX_NAMED + len(figures.CLASS_COLORS)   # reference + named + classes


def _legend_entries(fig) -> int:
    legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    legends += list(fig.legends)
    return sum(len(lg.get_texts()) for lg in legends)


def _study(tmp_path):
    rng = np.random.default_rng(4)
    names = [f"resnet{i}" if i % 3 else f"vit_{i}" for i in range(N_MODELS)]
    models = {n: (float(10 ** rng.uniform(0.6, 1.6)), float(rng.uniform(0.15, 0.4)))
              for n in names}
    trials = tmp_path / "trials.csv"
    synthetic_trials(n_humans=24, n_images=110, models=models, seed=5).to_csv(trials,
                                                                               index=False)
    acc = tmp_path / "acc.csv"
    pd.DataFrame({"model_name": names, "top1": rng.uniform(0.6, 0.9, N_MODELS),
                  "harmonized": [int(i % 21 == 0) for i in range(N_MODELS)]}).to_csv(
        acc, index=False)
    return trials, acc, names


def test_report_of_84_models_keeps_figures_bounded(tmp_path):
    trials, acc, names = _study(tmp_path)
    out = tmp_path / "report"
    render_report([trials], out, acc, n_boot=30, statistics=False, highlight=[names[5]])
    sizes = {}
    for png in out.glob("*.png"):
        with Image.open(png) as im:
            sizes[png.name] = im.size
    assert set(sizes) == {"decision_curves_animal-vs-non-animal.png", "observer_curves.png",
                          "thresholds.png", "accuracy_vs_alignment.png"}
    for name, (w, h) in sizes.items():
        assert 500 < w <= 1100 and 250 < h <= 900, (name, w, h)   # thresholds was 5,442 px
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "<details><summary>Show all 84 models</summary>" in html   # collapsed, not inline
    scores = pd.read_csv(out / "alignment.csv")
    assert len(scores) == N_MODELS


def test_figures_name_a_few_models_and_group_the_rest(tmp_path):
    from analysis.align import align
    from analysis.curves import accuracy_curves
    from tests.support.synthetic_trials import with_analysis_columns

    _, acc, names = _study(tmp_path)
    trials = with_analysis_columns(pd.read_csv(tmp_path / "trials.csv"))
    a = align(trials, n_boot=10)
    accuracy = pd.read_csv(acc)
    harmonized = list(accuracy.loc[accuracy["harmonized"] == 1, "model_name"])
    named = figures.choose_highlights(a.scores, [names[7]], harmonized=harmonized)
    best = a.scores.loc[a.scores["neg_log_mse"].idxmax(), "model_name"]
    worst = a.scores.loc[a.scores["neg_log_mse"].idxmin(), "model_name"]
    assert named[:3] == [names[7], best, worst] and len(named) == figures.MAX_NAMED
    assert any(m in harmonized for m in named)
    classes = {m: "harmonized" if m in harmonized else figures.model_class(m) for m in names}
    assert {"vit", "imagenet_cnn", "harmonized"} <= set(classes.values())
    curves = accuracy_curves(trials).assign(label="")
    fits = pd.DataFrame({"dataset": "animal-vs-non-animal", "observer_type": "model",
                         "model_name": names, "observer_id": names,
                         "threshold": np.geomspace(2, 60, N_MODELS)})
    made = {
        "decision": figures.decision_curves_figure(a.curves, "animal-vs-non-animal", "human",
                                                   "chance", named, classes),
        "accuracy": figures.accuracy_vs_alignment_figure(a.scores.merge(accuracy),
                                                         "neg_log_mse", named, classes),
        "observers": figures_detail.observer_curves_figure(curves, named, classes),
        "thresholds": figures_detail.threshold_figure(fits, named, classes),
    }
    for key, fig in made.items():
        n = _legend_entries(fig)
        assert 3 <= n <= MAX_LEGEND, (key, n)
        w, h = fig.get_size_inches()
        assert w <= 8 and h <= 6, (key, w, h)
    # the threshold figure has one row per group (3 classes), not one per model
    ax = made["thresholds"].axes[0]
    assert len(ax.get_yticks()) == 3
