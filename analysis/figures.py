"""The report's figures as PNG bytes (matplotlib, Agg): decision curves, accuracy vs
alignment with the Pareto front, per-observer curves. Simulated humans are labelled so."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.load import DATASETS  # noqa: E402

_DPI = 110


def observer_label(observer_type: str, observer_id, model_name=None) -> str:
    """How an observer is named in legends and tables; simulated humans say so."""
    if observer_type == "model":
        return str(model_name or observer_id)
    if observer_type == "simulated":
        return f"{observer_id} (simulated)"
    return str(observer_id)


def reference_label(reference: str) -> str:
    """The name of the pooled reference group: humans, or simulated humans."""
    return "humans" if reference == "human" else "SIMULATED humans"


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _x_axis(ax, dataset: str):
    info = DATASETS.get(dataset)
    if info is None or info.fit_scale == "log10":
        ax.set_xscale("log")
    ax.set_xlabel(info.level_name if info else "level")


def decision_curves_png(curves: pd.DataFrame, dataset: str, reference: str,
                        normalization: str) -> bytes:
    """Normalized accuracy vs level, reference group and each model, with bootstrap bands."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    colors = plt.cm.tab10(np.linspace(0, 1, 10))
    models = [o for o in pd.unique(curves["observer"]) if
              (curves.loc[curves["observer"] == o, "observer_type"] == "model").all()]
    for label, part in curves.groupby("observer", sort=False):
        is_ref = label not in models
        color = "black" if is_ref else colors[models.index(label) % 10]
        name = f"{reference_label(reference)} (pooled)" if is_ref else label
        ax.fill_between(part["level"], part["low"], part["high"], color=color,
                        alpha=0.18 if is_ref else 0.10, linewidth=0)
        ax.plot(part["level"], part["normalized"], "-o", color=color, ms=3.5,
                lw=2.6 if is_ref else 1.4, label=name, zorder=3 if is_ref else 2)
    _x_axis(ax, dataset)
    ax.set_ylabel(f"normalized accuracy ({normalization})")
    ax.axhline(0, color="grey", lw=0.6, ls=":")
    ax.set_title("Decision curves (95% bootstrap intervals)")
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    return _png(fig)


def pareto_front(alignment: np.ndarray, accuracy: np.ndarray) -> np.ndarray:
    """Boolean mask of points no other point beats on both axes (higher is better)."""
    a, t = np.asarray(alignment, float), np.asarray(accuracy, float)
    ge = (a[None, :] >= a[:, None]) & (t[None, :] >= t[:, None])
    gt = (a[None, :] > a[:, None]) | (t[None, :] > t[:, None])
    return ~np.any(ge & gt, axis=1)


def accuracy_vs_alignment_png(table: pd.DataFrame, metric: str = "neg_log_mse") -> bytes:
    """ImageNet top-1 vs decision alignment; the non-harmonized models' Pareto front drawn."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for harmonized, part in table.groupby("harmonized"):
        err = np.vstack([part[metric] - part[f"{metric}_low"],
                         part[f"{metric}_high"] - part[metric]])
        ax.errorbar(part[metric], part["top1"] * 100, xerr=np.clip(err, 0, None), fmt="o",
                    color="tab:red" if harmonized else "tab:blue", ms=6, capsize=2,
                    label="harmonized" if harmonized else "not harmonized")
    for r in table.itertuples():
        ax.annotate(r.model_name, (getattr(r, metric), r.top1 * 100), fontsize=7,
                    xytext=(4, 3), textcoords="offset points")
    base = table[table["harmonized"] == 0]
    if len(base):
        front = base[pareto_front(base[metric], base["top1"])].sort_values(metric)
        ax.plot(front[metric], front["top1"] * 100, "--", color="tab:blue", lw=1,
                label="Pareto front (not harmonized)")
    ax.set_xlabel(f"decision alignment ({metric.replace('_', ' ')})")
    ax.set_ylabel("ImageNet top-1 accuracy (%)")
    ax.legend(fontsize=8, frameon=False)
    return _png(fig)


# A curve of people with fewer trials than this per level (median) is only 0s and 1s; such
# observers are counted in the panel instead of drawn (their trials stay in the pooled curve).
MIN_TRIALS_PER_LEVEL = 5


def too_sparse(obs: pd.DataFrame) -> bool:
    """Is one observer's curve (rows per level) too thin to draw? Models never are."""
    return (obs["observer_type"].iloc[0] != "model"
            and obs["n_trials"].median() < MIN_TRIALS_PER_LEVEL)


def observer_curves_png(curves: pd.DataFrame) -> bytes:
    """Raw accuracy per level of every observer (Wilson bars), one panel per dataset.

    Human and simulated observers with a median of fewer than MIN_TRIALS_PER_LEVEL trials
    per level are not drawn; the panel says how many were left out.
    """
    datasets = list(pd.unique(curves["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(5.2 * len(datasets), 4.2),
                             squeeze=False)
    style = {"human": ("tab:gray", "-"), "simulated": ("tab:purple", "-"),
             "model": ("tab:orange", "--")}
    for ax, dataset in zip(axes[0], datasets, strict=True):
        part = curves[curves["dataset"] == dataset]
        few_models = part.loc[part["observer_type"] == "model", "model_name"].nunique() <= 10
        labelled = set()
        sparse = 0
        for (otype, oid, model), obs in part.groupby(
                ["observer_type", "observer_id", "model_name"], sort=False):
            if too_sparse(obs):
                sparse += 1
                continue
            color, ls = style[otype]
            kind = {"human": "human", "simulated": "simulated human",
                    "model": "model"}[otype]
            ax.errorbar(obs["level"], obs["accuracy"],
                        yerr=np.clip([obs["accuracy"] - obs["ci_low"],
                                      obs["ci_high"] - obs["accuracy"]], 0, None),  # rounding
                        color=color, ls=ls, lw=0.9, alpha=0.55, capsize=0, marker=".",
                        label=None if kind in labelled else f"{kind}s")
            labelled.add(kind)
            if otype == "model" and few_models:
                ax.annotate(observer_label(otype, oid, model),
                            (obs["level"].iloc[-1], obs["accuracy"].iloc[-1]), fontsize=6)
        if sparse:
            ax.text(0.02, 0.98, f"{sparse} observer(s) with < {MIN_TRIALS_PER_LEVEL} trials "
                    "per level not drawn\n(their trials are in the pooled curves)",
                    transform=ax.transAxes, fontsize=7, va="top", color="tab:purple")
        ax.axhline(part["guess"].iloc[0], color="grey", lw=0.6, ls=":")
        _x_axis(ax, dataset)
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel("accuracy (Wilson 95%)")
        ax.set_title(dataset)
        if labelled:  # a panel of only sparse observers has nothing to put in a legend
            ax.legend(fontsize=8, frameon=False)
    return _png(fig)


def threshold_png(fits: pd.DataFrame) -> bytes:
    """Fitted thresholds with bootstrap intervals, every observer, one panel per dataset."""
    datasets = list(pd.unique(fits["dataset"]))
    fig, axes = plt.subplots(1, len(datasets), figsize=(4.6 * len(datasets), 0.9 + 0.22 * len(
        fits) / max(1, len(datasets))), squeeze=False)
    color = {"human": "tab:gray", "simulated": "tab:purple", "model": "tab:orange"}
    for ax, dataset in zip(axes[0], datasets, strict=True):
        part = fits[fits["dataset"] == dataset].reset_index(drop=True)
        y = np.arange(len(part))
        err = np.vstack([part["threshold"] - part["threshold_low"],
                         part["threshold_high"] - part["threshold"]])
        ax.errorbar(part["threshold"], y, xerr=np.clip(np.nan_to_num(err), 0, None), fmt="o",
                    ms=3, ecolor=[color[t] for t in part["observer_type"]], color="k")
        ax.set_yticks(y, part["label"], fontsize=6)
        _x_axis(ax, dataset)
        ax.set_title(f"{dataset}: threshold (95% bootstrap)", fontsize=9)
    return _png(fig)
