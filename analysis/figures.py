"""The report's main figures (matplotlib, Agg): decision curves and accuracy vs alignment.

Every figure is saved three times by :func:`save_figure` — PNG for the page, SVG and PDF
for a paper. Figures stay readable from 1 to 100+ models: the reference group and a few
named models (:func:`choose_highlights`: best, worst, harmonized, and those asked for with
``--highlight``) are drawn in colour with a legend entry each; every other model is a thin
line or point coloured by its model class (:func:`model_class`), one legend entry per class.
Per-observer figures are in ``analysis.figures_detail``; the "where" half in
``analysis.figures_where``. Simulated humans are labelled so.
"""

from __future__ import annotations

import functools
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402

from analysis.load import DATASETS  # noqa: E402
from suite.atomic import atomic_write_bytes  # noqa: E402
from suite.errors import InputError  # noqa: E402

#: PNG resolution; a 7.5-inch-wide figure is 900 px, scaled down by the page if wider.
DPI = 120
#: Most models named (drawn in colour, one legend entry each) in a figure.
MAX_NAMED = 8
#: Figure formats written beside each other (the page shows the PNG).
FORMATS = ("png", "svg", "pdf")

#: Colour of each model class (keys of models.catalog: the paper's five classes), of models
#: the catalog does not know, and of the harmonized ones.
CLASS_COLORS = {"imagenet_cnn": "#7f9cc9", "extra_data_cnn": "#5ab4c5", "vit": "#e8996b",
                "self_supervised": "#6fbf9f", "robust": "#b39ddb", "other": "#a8a8a8",
                "harmonized": "#c0392b"}
CLASS_LABELS = {"imagenet_cnn": "ImageNet CNNs", "extra_data_cnn": "CNNs trained with extra data",
                "vit": "Vision transformers", "self_supervised": "Self-supervised",
                "robust": "Robust models", "other": "other models", "harmonized": "harmonized"}
NAMED_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2",
                "#17becf", "#bcbd22")

# Name fragments → class (the catalog's keys), checked in this order ("resnet50_dino" is
# self-supervised, "resnet50_adv" robust); used for models the catalog does not list.
_NAME_CLASSES = (
    ("self_supervised", ("simclr", "dino", "moco", "byol", "swav", "barlow", "_mae", "mae_",
                         "clip", "ssl", "swsl", "semisup")),
    ("robust", ("adv", "robust", "augmix", "stylized", "noisy")),
    ("vit", ("vit", "deit", "swin", "beit", "cait", "xcit", "levit", "pit_", "tnt_",
             "crossvit", "mvit", "coat", "twins", "convit", "eva", "transformer")),
    ("imagenet_cnn", ("resnet", "resnext", "efficientnet", "mobilenet", "vgg", "densenet",
                      "inception", "convnext", "regnet", "mnasnet", "squeezenet", "alexnet",
                      "googlenet", "shufflenet", "ghostnet", "mixnet", "nfnet", "dpn",
                      "xception", "darknet", "cspnet", "hrnet", "res2net", "senet", "rexnet",
                      "vovnet", "dla", "lcnet", "bagnet", "cornet")),
)


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


@functools.lru_cache(maxsize=1)
def _catalog_class():
    """``models.catalog.model_class`` when the models package offers one, else None."""
    try:
        from models.catalog import model_class as catalog_class
    except ImportError:
        return None
    return catalog_class


def class_from_name(name: str) -> str:
    """A model's class guessed from its name, in the catalog's keys (imagenet_cnn, vit,
    self_supervised, robust) or "other"."""
    low = str(name).lower()
    for cls, parts in _NAME_CLASSES:
        if any(p in low for p in parts):
            return cls
    return "other"


def model_class(name: str) -> str:
    """The class a model is coloured by: ``models.catalog.model_class`` when the catalog
    lists the model, else :func:`class_from_name` (a heuristic on the name)."""
    catalog = _catalog_class()
    cls = catalog(str(name)) if catalog is not None else None
    return str(cls) if cls else class_from_name(name)


def class_color(cls: str) -> str:
    return CLASS_COLORS.get(cls, CLASS_COLORS["other"])


def class_label(cls: str) -> str:
    return CLASS_LABELS.get(cls, cls)


def choose_highlights(scores: pd.DataFrame, requested=(), metric: str = "neg_log_mse",
                      harmonized=()) -> list[str]:
    """The models named in the figures, in legend order.

    ``scores`` has ``model_name`` and ``metric`` (one row per model and dataset; the mean
    over datasets ranks). With at most MAX_NAMED models, all of them; else those
    ``requested`` (``--highlight``), the best and the worst, the best harmonized, then the
    next best and worst until MAX_NAMED. An unknown requested name is an InputError.
    """
    mean = scores.groupby("model_name", sort=False)[metric].mean()
    names = list(mean.index)
    unknown = [n for n in requested if n not in names]
    if unknown:
        shown = ", ".join(names[:12]) + (" …" if len(names) > 12 else "")
        raise InputError(f"--highlight: no model named {unknown[0]!r} in the trials; "
                         f"models: {shown}")
    if len(requested) > MAX_NAMED:
        raise InputError(f"--highlight: {len(requested)} names; at most {MAX_NAMED} are drawn "
                         "named (the rest are drawn by model class)")
    if len(names) <= MAX_NAMED:
        return names
    ranked = mean.sort_values(ascending=False, na_position="last")
    ranked = list(ranked.dropna().index) or names
    chosen = list(dict.fromkeys(requested))

    def add(name):
        if name not in chosen and len(chosen) < MAX_NAMED:
            chosen.append(name)

    add(ranked[0])
    add(ranked[-1])
    for name in ranked:
        if name in set(harmonized):
            add(name)
            break
    for i in range(1, len(ranked)):
        add(ranked[i])
        add(ranked[-1 - i])
    return chosen


def save_figure(fig, out: Path, stem: str) -> str:
    """Write ``stem``.png, .svg and .pdf into ``out``; return the PNG's name."""
    import io

    for fmt in FORMATS:
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=DPI, bbox_inches="tight",
                    metadata={"Date": None} if fmt == "svg" else None)
        atomic_write_bytes(Path(out) / f"{stem}.{fmt}", buf.getvalue())
    plt.close(fig)
    return f"{stem}.png"


def png_bytes(fig) -> bytes:
    """The figure as PNG bytes (closed afterwards)."""
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def plain_log_axis(axis) -> None:
    """Label a log axis with plain numbers on major ticks only (no "3×10¹" minor labels)."""
    axis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


def x_axis(ax, dataset: str) -> None:
    info = DATASETS.get(dataset)
    if info is None or info.fit_scale == "log10":
        ax.set_xscale("log")
        plain_log_axis(ax.xaxis)
    ax.set_xlabel(info.level_name if info else "level")


def legend_below(fig, ax, handles=None, labels=None, ncol: int = 2) -> None:
    """One legend under the axes (its height grows with entries, which are bounded)."""
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, fontsize=8, frameon=False, ncol=ncol, loc="upper center",
                  bbox_to_anchor=(0.5, -0.16))


def _class_counts(models, classes: dict) -> dict:
    counts: dict[str, int] = {}
    for m in models:
        counts[classes[m]] = counts.get(classes[m], 0) + 1
    return counts


def decision_curves_figure(curves: pd.DataFrame, dataset: str, reference: str,
                           normalization: str, highlights=(), classes: dict | None = None):
    """Normalized accuracy vs level (the paper's Fig. 5c): the reference group thick black
    with its band, named models in colour with bands, every other model a thin line in its
    class colour. Returns the Figure."""
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    models = [o for o in pd.unique(curves["observer"]) if
              (curves.loc[curves["observer"] == o, "observer_type"] == "model").all()]
    classes = classes or {m: model_class(m) for m in models}
    named = [m for m in highlights if m in models] if highlights else models[:MAX_NAMED]
    background = [m for m in models if m not in named]
    drawn = []
    for label, part in curves.groupby("observer", sort=False):
        if label in models:
            continue
        ax.fill_between(part["level"], part["low"], part["high"], color="black", alpha=0.15,
                        linewidth=0)
        ax.plot(part["level"], part["normalized"], "-o", color="black", ms=3.5, lw=2.6,
                label=f"{reference_label(reference)} (pooled)", zorder=4)
        drawn.append(part["normalized"])
    for m in background:
        part = curves[curves["observer"] == m]
        ax.plot(part["level"], part["normalized"], "-", color=class_color(classes[m]), lw=0.7,
                alpha=0.55, zorder=1)
        drawn.append(part["normalized"])
    for cls, n in _class_counts(background, classes).items():
        ax.plot([], [], "-", color=class_color(cls), lw=1.5, label=f"{class_label(cls)} ({n})")
    for i, m in enumerate(named):
        part = curves[curves["observer"] == m]
        color = NAMED_COLORS[i % len(NAMED_COLORS)]
        ax.fill_between(part["level"], part["low"], part["high"], color=color, alpha=0.08,
                        linewidth=0)
        ax.plot(part["level"], part["normalized"], "-o", color=color, ms=3, lw=1.5,
                label=m + (" (harmonized)" if classes[m] == "harmonized" else ""), zorder=3)
        drawn.append(part["normalized"])
    values = pd.concat(drawn).to_numpy(dtype=float) if drawn else np.array([0.0, 1.0])
    values = values[np.isfinite(values)]
    lo = min(-0.25, float(values.min()) - 0.1) if values.size else -0.25
    hi = max(1.15, float(values.max()) + 0.1) if values.size else 1.15
    ax.set_ylim(lo, hi)  # the curves set the scale; a wide band is clipped to it
    x_axis(ax, dataset)
    ax.set_ylabel(f"normalized accuracy ({normalization})")
    ax.axhline(0, color="grey", lw=0.6, ls=":")
    ax.set_title(f"Decision curves, {dataset}", fontsize=10)
    legend_below(fig, ax, ncol=2 if len(named) + 3 <= 8 else 3)
    return fig


def pareto_front(alignment: np.ndarray, accuracy: np.ndarray) -> np.ndarray:
    """Boolean mask of points no other point beats on both axes (higher is better)."""
    a, t = np.asarray(alignment, float), np.asarray(accuracy, float)
    ge = (a[None, :] >= a[:, None]) & (t[None, :] >= t[:, None])
    gt = (a[None, :] > a[:, None]) | (t[None, :] > t[:, None])
    return ~np.any(ge & gt, axis=1)


def scatter_with_front(ax, x: pd.Series, y: pd.Series, harmonized: pd.Series, classes,
                       names: pd.Series, highlights=(), xerr=None, yerr=None) -> None:
    """Points by class (harmonized as red diamonds), error bars, the non-harmonized models'
    Pareto front (higher is better on both axes) dashed, named models annotated."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    harm = np.asarray(harmonized, bool)
    cls = np.array(["harmonized" if h else classes[n] for n, h in zip(names, harm, strict=True)])
    if xerr is not None or yerr is not None:
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="none", ecolor="#999999", elinewidth=0.7,
                    alpha=0.6, zorder=1)
    for c in dict.fromkeys(cls):
        pick = cls == c
        ax.scatter(x[pick], y[pick], s=42 if c == "harmonized" else 26,
                   marker="D" if c == "harmonized" else "o", color=class_color(c),
                   edgecolor="black", linewidth=0.4, zorder=3,
                   label=f"{class_label(c)} ({int(pick.sum())})")
    base = ~harm & np.isfinite(x) & np.isfinite(y)
    if base.any():
        front = np.flatnonzero(base)[pareto_front(x[base], y[base])]
        front = front[np.argsort(x[front])]
        ax.plot(x[front], y[front], "--", color="#1f4e79", lw=1.1, zorder=2)
        ax.scatter(x[front], y[front], s=110, facecolor="none", edgecolor="#1f4e79",
                   linewidth=1.0, zorder=2, label="Pareto front (not harmonized)")
    ax.margins(x=0.08)  # room for the label of the rightmost point
    picked = [i for i, n in enumerate(names) if n in highlights and np.isfinite(x[i])
              and np.isfinite(y[i])]
    label_points(ax, x[picked], y[picked], [str(names.iloc[i]) if hasattr(names, "iloc")
                                            else str(names[i]) for i in picked])


def label_points(ax, x, y, texts, fontsize: float = 7) -> None:
    """Name points beside them, moving a label down (with a leader line) until it overlaps
    no label placed before it."""
    ax.autoscale_view()
    fig = ax.figure
    scale = 72.0 / fig.dpi
    height, char = fontsize * 1.25, fontsize * 0.58
    placed: list[tuple[float, float, float]] = []     # (x, y, width) in points
    order = np.argsort(-np.asarray(y, float), kind="stable")
    for i in order:
        px, py = ax.transData.transform((x[i], y[i])) * scale
        lx, ly, width = px + 4, py + 3, char * len(texts[i])
        for _ in range(40):
            if not any(abs(ly - qy) < height and lx < qx + qw and qx < lx + width
                       for qx, qy, qw in placed):
                break
            ly -= height
        placed.append((lx, ly, width))
        moved = ly != py + 3
        ax.annotate(texts[i], (x[i], y[i]), xytext=(lx - px, ly - py),
                    textcoords="offset points", fontsize=fontsize, zorder=5,
                    arrowprops={"arrowstyle": "-", "lw": 0.5, "color": "#666666"}
                    if moved else None)


def accuracy_vs_alignment_figure(table: pd.DataFrame, metric: str = "neg_log_mse",
                                 highlights=(), classes: dict | None = None):
    """ImageNet top-1 vs decision alignment (the paper's Fig. 5b) with the non-harmonized
    models' Pareto front; harmonized models marked. Returns the Figure."""
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    table = table.groupby("model_name", sort=False).agg(
        {metric: "mean", f"{metric}_low": "mean", f"{metric}_high": "mean", "top1": "first",
         "harmonized": "first"}).reset_index()
    classes = classes or {m: model_class(m) for m in table["model_name"]}
    err = np.vstack([table[metric] - table[f"{metric}_low"],
                     table[f"{metric}_high"] - table[metric]])
    scatter_with_front(ax, table[metric], table["top1"] * 100, table["harmonized"], classes,
                       table["model_name"], highlights or list(table["model_name"])[:MAX_NAMED],
                       xerr=np.clip(np.nan_to_num(err), 0, None))
    ax.set_xlabel(f"decision alignment ({metric.replace('_', ' ')}, 95% interval)")
    ax.set_ylabel("ImageNet top-1 accuracy (%)")
    ax.set_title("ImageNet accuracy vs decision alignment", fontsize=10)
    legend_below(fig, ax, ncol=3)
    return fig
