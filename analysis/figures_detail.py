"""The report's per-observer figures: every observer's raw curve, and thresholds as
distributions per group (violin + points), so their size does not grow with observers or
models. Panels wrap at PANELS_PER_ROW datasets."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from analysis.figures import (
    MAX_NAMED,
    NAMED_COLORS,
    class_color,
    class_label,
    model_class,
    observer_label,
    plain_log_axis,
    x_axis,
)
from analysis.load import DATASETS

# A curve of people with fewer trials than this per level (median) is only 0s and 1s; such
# observers are counted in the panel instead of drawn (their trials stay in the pooled curve).
MIN_TRIALS_PER_LEVEL = 5
PANELS_PER_ROW = 3
#: With more people than this in a panel, their curves are drawn without Wilson bars.
MAX_PEOPLE_WITH_BARS = 12
PEOPLE_COLORS = {"human": "#555555", "simulated": "#8e44ad"}


def too_sparse(obs: pd.DataFrame) -> bool:
    """Is one observer's curve (rows per level) too thin to draw? Models never are."""
    return (obs["observer_type"].iloc[0] != "model"
            and obs["n_trials"].median() < MIN_TRIALS_PER_LEVEL)


def _panels(n: int, width: float, height: float):
    cols = min(n, PANELS_PER_ROW)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    return fig, list(axes.flat[:n])


def observer_curves_figure(curves: pd.DataFrame, highlights=(), classes: dict | None = None):
    """Raw accuracy per level of every observer (Wilson bars for people), one panel per
    dataset: people thin grey (simulated purple), named models in colour, other models
    thin in their class colour (people without Wilson bars when there are more than
    MAX_PEOPLE_WITH_BARS). People with a median of fewer than MIN_TRIALS_PER_LEVEL
    trials per level are counted, not drawn."""
    datasets = list(pd.unique(curves["dataset"]))
    fig, axes = _panels(len(datasets), 4.0 if len(datasets) > 1 else 7.5, 3.6
                        if len(datasets) > 1 else 4.6)
    models = list(pd.unique(curves.loc[curves["observer_type"] == "model", "model_name"]))
    classes = classes or {m: model_class(m) for m in models}
    named = [m for m in highlights if m in models] if highlights else models[:MAX_NAMED]
    people_h, class_h, named_h = {}, {}, {}
    many = (curves.loc[curves["observer_type"] != "model", ["dataset", "observer_id"]]
            .drop_duplicates().groupby("dataset").size().max() if
            (curves["observer_type"] != "model").any() else 0) > MAX_PEOPLE_WITH_BARS
    for ax, dataset in zip(axes, datasets, strict=True):
        part = curves[curves["dataset"] == dataset]
        sparse = 0
        for (otype, oid, model), obs in part.groupby(
                ["observer_type", "observer_id", "model_name"], sort=False, dropna=False):
            if too_sparse(obs):
                sparse += 1
                continue
            if otype == "model":
                name = observer_label(otype, oid, model)
                if name in named:
                    color = NAMED_COLORS[named.index(name) % len(NAMED_COLORS)]
                    line, = ax.plot(obs["level"], obs["accuracy"], "--", color=color, lw=1.3,
                                    zorder=4)
                    named_h.setdefault(name, line)
                else:
                    cls = classes.get(name, "other")
                    line, = ax.plot(obs["level"], obs["accuracy"], "-", lw=0.6, alpha=0.5,
                                    color=class_color(cls), zorder=2)
                    class_h.setdefault(class_label(cls), line)
                continue
            color = PEOPLE_COLORS[otype]
            label = "simulated humans" if otype == "simulated" else "humans"
            if many:  # bars of dozens of people hide everything else
                line, = ax.plot(obs["level"], obs["accuracy"], "-", color=color, lw=0.6,
                                alpha=0.3, zorder=1)
                people_h.setdefault(label, line)
                continue
            bars = ax.errorbar(obs["level"], obs["accuracy"],
                               yerr=np.clip([obs["accuracy"] - obs["ci_low"],
                                             obs["ci_high"] - obs["accuracy"]], 0, None),
                               color=color, lw=0.8, alpha=0.45, capsize=0, marker=".", ms=3)
            people_h.setdefault(label, bars)
        if sparse:
            ax.text(0.02, 0.98, f"{sparse} observer(s) with < {MIN_TRIALS_PER_LEVEL} trials "
                    "per level not drawn\n(their trials are in the pooled curves)",
                    transform=ax.transAxes, fontsize=7, va="top", color="#8e44ad")
        ax.axhline(part["guess"].iloc[0], color="grey", lw=0.6, ls=":")
        x_axis(ax, dataset)
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel("accuracy" if many else "accuracy (Wilson 95%)")
        ax.set_title(dataset, fontsize=10)
    from matplotlib.lines import Line2D

    def proxy(h):  # a legend line as thick as a named model's, in the group's colour
        line = h[0] if isinstance(h, tuple | list) or hasattr(h, "lines") else h
        line = line.lines[0] if hasattr(line, "lines") else line
        return Line2D([], [], color=line.get_color(), lw=2)

    handles = {**{k: proxy(h) for k, h in {**people_h, **class_h}.items()}, **named_h}
    if handles:  # a panel of only sparse observers has nothing to put in a legend
        fig.legend(list(handles.values()), list(handles), fontsize=8, frameon=False,
                   ncol=3, loc="upper center", bbox_to_anchor=(0.5, 0.0))
    fig.tight_layout()
    return fig


def _groups(part: pd.DataFrame, classes: dict) -> list[tuple[str, str, pd.DataFrame]]:
    """Rows of the threshold figure, (label, colour, fits): each people type, then each
    model class."""
    out = []
    for kind, label in (("human", "humans"), ("simulated", "simulated humans")):
        rows = part[part["observer_type"] == kind]
        if len(rows):
            out.append((label, PEOPLE_COLORS[kind], rows))
    models = part[part["observer_type"] == "model"]
    cls = models["model_name"].map(lambda m: classes.get(m, "other"))
    for c in dict.fromkeys(cls):
        out.append((class_label(c), class_color(c), models[cls == c]))
    return out


def threshold_figure(fits: pd.DataFrame, highlights=(), classes: dict | None = None,
                     level_range: dict | None = None):
    """Fitted thresholds as distributions: one row per group (humans, simulated humans, each
    model class), a violin where a group has ≥ 5 finite thresholds, every observer a point;
    named models labelled. Thresholds beyond 3× the tested range are drawn at its edge as
    open triangles (``level_range``: dataset → (lowest, highest) level tested; else the
    thresholds' own range). Returns the Figure."""
    datasets = list(pd.unique(fits["dataset"]))
    models = list(pd.unique(fits.loc[fits["observer_type"] == "model", "model_name"]))
    classes = classes or {m: model_class(m) for m in models}
    named = [m for m in highlights if m in models] if highlights else models[:MAX_NAMED]
    n_groups = max(len(_groups(fits[fits["dataset"] == d], classes)) for d in datasets)
    fig, axes = _panels(len(datasets), 4.0 if len(datasets) > 1 else 7.5,
                        max(2.4, 1.2 + 0.55 * n_groups))
    rng = np.random.default_rng(0)
    for ax, dataset in zip(axes, datasets, strict=True):
        part = fits[fits["dataset"] == dataset]
        groups = _groups(part, classes)
        levels = (level_range or {}).get(dataset)  # (lowest, highest) level tested
        info = DATASETS.get(dataset)
        log = info is None or info.fit_scale == "log10"
        values = part["threshold"].to_numpy(float)
        finite = values[np.isfinite(values)]
        lo, hi = (levels if levels else (np.nanmin(finite), np.nanmax(finite))
                  if finite.size else (1.0, 100.0))
        lo, hi = (lo / 3, hi * 3) if log else (lo - (hi - lo), hi + (hi - lo))
        for y, (_label, color, rows) in enumerate(groups):
            t = rows["threshold"].to_numpy(float)
            ok = np.isfinite(t)
            shown = np.clip(t[ok], lo, hi)
            if ok.sum() >= 5 and np.ptp(np.log10(shown) if log else shown) > 0:
                data = np.log10(shown) if log else shown
                v = ax.violinplot(data, positions=[y], orientation="horizontal", widths=0.8,
                                  showextrema=False)
                for body in v["bodies"]:
                    body.set_facecolor(color)
                    body.set_alpha(0.3)
                    if log:  # violins are drawn on log10 values; map them back
                        path = body.get_paths()[0]
                        path.vertices[:, 0] = 10 ** path.vertices[:, 0]
            jitter = rng.uniform(-0.18, 0.18, ok.sum())
            inside = (t[ok] >= lo) & (t[ok] <= hi)
            ax.scatter(shown[inside], y + jitter[inside], s=9, color=color, alpha=0.8,
                       edgecolor="none", zorder=3)
            ax.scatter(shown[~inside], y + jitter[~inside], s=22, marker=">", facecolor="none",
                       edgecolor=color, zorder=3)
            for name, th in zip(rows["model_name"], t, strict=True):
                if name in named and np.isfinite(th):
                    i = named.index(name)
                    ax.scatter([np.clip(th, lo, hi)], [y], s=40, marker="D",
                               color=NAMED_COLORS[i % len(NAMED_COLORS)], edgecolor="black",
                               zorder=4, label=name)
            ax.text(1.0, y, f" n={int(ok.sum())}", transform=ax.get_yaxis_transform(),
                    fontsize=7, va="center")
        ax.set_yticks(range(len(groups)), [g[0] for g in groups], fontsize=8)
        ax.set_ylim(-0.6, len(groups) - 0.4)
        ax.invert_yaxis()
        if log:
            ax.set_xscale("log")
            plain_log_axis(ax.xaxis)
        ax.set_xlim(lo * (0.9 if log else 1), hi * (1.1 if log else 1))
        x_axis(ax, dataset)
        ax.set_title(f"{dataset}: fitted thresholds", fontsize=10)
    handles = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, h)
    fig.tight_layout()
    if handles:
        fig.legend(list(handles.values()), list(handles), fontsize=8, frameon=False, ncol=3,
                   loc="upper center", bbox_to_anchor=(0.5, 0.0))
    return fig
