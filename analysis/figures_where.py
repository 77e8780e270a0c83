"""The "where" half in the report (the paper's Figs. 3–4 in kind): feature alignment
(mean Spearman ρ with human maps / the human ceiling, ± its bootstrapped SD) against
ImageNet top-1, the Pareto front of the non-harmonized models, harmonized models marked,
and the centre-bias control (†) as a line."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis.figures import MAX_NAMED, legend_below, scatter_with_front


def feature_alignment_figure(table: pd.DataFrame, control: float | None = None,
                             highlights=(), classes: dict | None = None,
                             maps_note: str = ""):
    """``table``: model_name, score, score_sd, top1 (fraction), harmonized (1/0).
    ``control``: the centre-bias control's score (drawn as a dashed line, †)."""
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    classes = classes or {}
    classes = {m: classes.get(m, "other") for m in table["model_name"]}
    scatter_with_front(ax, table["top1"] * 100, table["score"], table["harmonized"], classes,
                       table["model_name"],
                       highlights or list(table["model_name"])[:MAX_NAMED],
                       yerr=np.nan_to_num(table["score_sd"].to_numpy(float)))
    if control is not None and np.isfinite(control):
        ax.axhline(control, color="#b03a2e", ls=":", lw=1.2,
                   label=f"centre-bias control † ({control:.2f})")
    ax.set_xlabel("ImageNet top-1 accuracy (%)")
    ax.set_ylabel("feature alignment (Spearman ρ / ceiling, ± SD)")
    title = "Feature alignment with human maps vs ImageNet accuracy"
    if maps_note:
        title += f"\n{maps_note}"
    ax.set_title(title, fontsize=10, color="#b03a2e" if maps_note else "black")
    legend_below(fig, ax, ncol=3)
    return fig
