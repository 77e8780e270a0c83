"""``python -m analysis report``: curves, fits, alignment, figures, statistics, methods and
one HTML page.

The page's order (docs/analysis.md "Report"): what was run → the alignment table → decision
curves → accuracy vs decision alignment → the "where" half (``--where``) → statistics →
per-observer detail → methods → exclusions and provenance. Every figure is written as PNG
(shown), SVG and PDF; large tables are CSV links or collapsed.

Model accuracy CSV (``--model-accuracy``): columns ``model_name, top1, harmonized`` —
ImageNet top-1 as a fraction in [0, 1], harmonized 1/0; ``model_name`` as in the trials.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import figures, figures_detail, figures_where, methods, viewing
from analysis.align import METRICS, align, reference_type
from analysis.bootstrap import DEFAULT_N_BOOT, bootstrap_fit
from analysis.curves import accuracy_curves, count_matrix, pooled_curve
from analysis.exclusions import ExclusionRules, apply_exclusions
from analysis.import_mvh import categorical_accuracy, is_categorical
from analysis.load import load_trials
from analysis.normalize import DEFAULT_METHOD, METHODS
from analysis.trial_checks import check_input_files, check_unique_trials, split_shared_observers
from analysis.where_results import read_where
from suite.atomic import atomic_write_text
from suite.cli_types import exactly, float_in, int_at_least, int_in, list_item
from suite.errors import InputError
from suite.outputs import building_folder, check_output_folder
from suite.provenance import file_sha256, provenance

ACCURACY_COLUMNS = ("model_name", "top1", "harmonized")


def read_model_accuracy(path: str | os.PathLike) -> pd.DataFrame:
    """The model-accuracy CSV: model_name, top1 (fraction in [0, 1]), harmonized (1/0)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: model-accuracy file not found; write it with "
                         "python -m models accuracy")
    df = pd.read_csv(path)
    missing = [c for c in ACCURACY_COLUMNS if c not in df]
    if missing:
        raise InputError(f"{path}: missing column(s) {missing}; expected "
                         f"{', '.join(ACCURACY_COLUMNS)}")
    top1 = pd.to_numeric(df["top1"], errors="coerce")
    if top1.isna().any() or not top1.between(0, 1).all():
        raise InputError(f"{path}: top1 must be a fraction in [0, 1] (e.g. 0.812, not 81.2)")
    harm = pd.to_numeric(df["harmonized"], errors="coerce")
    if not harm.isin([0, 1]).all():
        raise InputError(f"{path}: harmonized must be 1 or 0 for every model")
    return pd.DataFrame({"model_name": df["model_name"].astype(str), "top1": top1,
                         "harmonized": harm.astype(int)})


def _write_csv(out: Path, name: str, df: pd.DataFrame) -> str:
    atomic_write_text(out / name, df.to_csv(index=False, float_format="%.6g"))
    return name


def _labelled(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df["label"] = [figures.observer_label(t, o, m) for t, o, m in
                   zip(df["observer_type"], df["observer_id"], df["model_name"], strict=True)]
    return df


def _fit_table(curves: pd.DataFrame, n_boot: int, seed: int) -> pd.DataFrame:
    frames = []
    for dataset in pd.unique(curves["dataset"]):
        cm = count_matrix(curves, dataset)
        bf = bootstrap_fit(cm.levels, cm.n_correct, cm.n_trials, n_boot=n_boot, seed=seed,
                           guess=cm.guess, scale=cm.fit_scale, increasing=cm.increasing)
        frames.append(pd.concat([cm.observers.assign(dataset=dataset), bf.summary()], axis=1))
    return _labelled(pd.concat(frames, ignore_index=True))


def _check_paths(trials, out: Path, model_accuracy, overwrite: bool,
                 extra=()) -> list | None:
    """Refuse a bad --out, a trial table given twice, a bad accuracy file: before any work."""
    paths = None
    if not isinstance(trials, pd.DataFrame):
        paths = [trials] if isinstance(trials, str | os.PathLike) else list(trials)
    named = list(paths or [])
    if model_accuracy is not None and not isinstance(model_accuracy, pd.DataFrame):
        named.append(model_accuracy)
    named.extend(extra)
    check_output_folder(out, inputs=named, option="--out", overwrite=overwrite)
    if paths is not None:
        check_input_files(paths)
    return paths


def _check_references(kept: pd.DataFrame) -> None:
    """Models are scored against people: refuse a dataset with models and no people."""
    for dataset, rows in kept.groupby("dataset", sort=False):
        kinds = set(rows["observer_type"])
        if "model" in kinds and not kinds & {"human", "simulated"}:
            raise InputError(f"dataset {dataset!r} has model trials but no human or simulated "
                             "observers to compare them with; add their trial tables to "
                             "--trials")



#: A table with more rows than this is collapsed (<details>) on the page.
INLINE_ROWS = 12
#: Rows of a table put in the page at most (all of them are in its CSV).
MAX_HTML_ROWS = 300
METRIC_LABELS = {"neg_log_mse": "−log MSE", "correlation": "correlation",
                 "threshold_ratio": "threshold ratio", "error_consistency": "κ (pooled)",
                 "error_consistency_pairwise": "κ (per pair)"}


@dataclass
class _Page:
    """What the page shows, section by section, in its order."""

    notes: list = field(default_factory=list)
    alignment: dict | None = None
    curves: list = field(default_factory=list)
    pareto: list = field(default_factory=list)
    where: list = field(default_factory=list)
    where_text: str = ""
    where_tables: list = field(default_factory=list)
    statistics: list = field(default_factory=list)
    statistics_note: str = ""
    detail_figures: list = field(default_factory=list)
    detail_tables: list = field(default_factory=list)


def render_report(trials: pd.DataFrame | Iterable[str | os.PathLike], out_dir,
                  model_accuracy: str | os.PathLike | pd.DataFrame | None = None, *,
                  rules: ExclusionRules | None = None, normalization: str = DEFAULT_METHOD,
                  n_boot: int = DEFAULT_N_BOOT, seed: int = 0, overwrite: bool = False,
                  say: Callable[[str], object] | None = None, highlight=(), where=(),
                  stimuli: str | os.PathLike | None = None, statistics: bool = True,
                  glmm: bool = False) -> Path:
    """Write figures (PNG, SVG, PDF), tables (CSV), methods.md, provenance and index.html
    into out_dir; return the page.

    ``highlight``: models to name in the figures (besides the best, the worst and a
    harmonized one); ``where``: ``models where`` JSON files (the "where" half);
    ``stimuli``: the stimulus set folder (its maps note and design go into the page);
    ``statistics``: the statistics section (``analysis.stats``); ``glmm``: its mixed model.
    The report is built in a hidden sibling folder and swapped in only when complete, so a
    failure leaves an earlier report exactly as it was (and a new folder not made at all).
    An existing non-empty ``out_dir`` needs ``overwrite`` and must be a report the suite
    made. ``say`` (e.g. ``print``) receives the lines a person must see: exclusions and
    warnings; they are also at the top of the page.
    """
    out = Path(out_dir)
    where = [Path(p) for p in where or ()]
    paths = _check_paths(trials, out, model_accuracy, overwrite, extra=[*where, *(
        [Path(stimuli) / "stimulus_set.json"] if stimuli is not None else [])])
    acc = None
    if model_accuracy is not None:
        acc = model_accuracy if isinstance(model_accuracy, pd.DataFrame) \
            else read_model_accuracy(model_accuracy)
    where_table = read_where(where, n_boot=max(n_boot, 2), seed=seed) if where else None
    stimulus_set = methods.read_stimulus_set(stimuli) if stimuli is not None else None
    inputs = []
    if paths is None:
        df = trials
        inputs.append({"path": "(DataFrame given in Python)", "sha256": "", "rows": len(df)})
    else:
        df = load_trials(paths)
        for src, rows in df.groupby("source_file", sort=False):
            inputs.append({"path": src, "sha256": file_sha256(src), "rows": len(rows)})
    for p in where:
        inputs.append({"path": str(p), "sha256": file_sha256(p), "rows": ""})
    check_unique_trials(df)
    df, warnings_ = split_shared_observers(df)
    kept, excl = apply_exclusions(df, rules)
    _check_references(kept)
    known = set(kept.loc[kept["observer_type"] == "model", "model_name"])
    if where_table is not None:
        known |= set(where_table.models["model_name"])
    unknown = [h for h in highlight if h not in known]
    if unknown:
        raise InputError(f"--highlight: no model named {unknown[0]!r} in the trials or "
                         f"--where results; models: {', '.join(sorted(known)[:12])}")
    headline = excl.headline()
    for line in (headline, *warnings_):
        if say is not None:
            say(line)
    settings = {"normalization": normalization, "n_boot": n_boot, "seed": seed,
                "highlight": list(highlight), "statistics": statistics, "glmm": glmm}
    with building_folder(out, "analysis report") as tmp:
        _write_report(tmp, df, kept, excl, inputs, acc, model_accuracy, warnings_,
                      where_table, stimulus_set, settings, say)
    return out / "index.html"


def _classes(models, acc: pd.DataFrame | None) -> dict:
    """Each model's colour class: harmonized (from the accuracy CSV), else figures.model_class."""
    harmonized = set() if acc is None else set(acc.loc[acc["harmonized"] == 1, "model_name"])
    return {m: "harmonized" if m in harmonized else figures.model_class(m) for m in models}


def _figure(out: Path, fig, stem: str, title: str, caption: str) -> dict:
    png = figures.save_figure(fig, out, stem)
    return {"title": title, "caption": caption, "file": png, "svg": f"{stem}.svg",
            "pdf": f"{stem}.pdf"}


def _write_report(out: Path, df, kept, excl, inputs, acc, model_accuracy, warnings_,
                  where_table, stimulus_set, settings: dict, say) -> Path:
    page = _Page(notes=list(warnings_))
    n_boot = settings["n_boot"]
    models = list(pd.unique(kept.loc[kept["observer_type"] == "model", "model_name"]))
    where_models = [] if where_table is None else list(where_table.models["model_name"])
    classes = _classes(list(dict.fromkeys(models + where_models)), acc)
    graded, categorical = _split_categorical(out, kept)
    alignments = {}
    if not graded.empty:
        alignments = _graded_sections(out, graded, acc, page, classes, settings)
    page.detail_tables.extend(categorical)
    if where_table is not None:
        _where_section(out, where_table, acc, page, classes, settings)
    if settings["statistics"]:
        _statistics_section(out, kept, alignments, page, settings, say)
    excl_table = _labelled(excl.observers.assign(model_name=""))
    page.detail_tables.append(_table(out, "Observers and exclusions", "Per-observer "
                                     "statistics behind the exclusion rules.", "exclusions.csv",
                                     excl_table))
    params = {"trials": [i["path"] for i in inputs], **settings,
              "exclusions": asdict(excl.rules),
              "where": None if where_table is None else where_table.files,
              "stimuli": None if stimulus_set is None else stimulus_set["folder"],
              "model_accuracy": None if model_accuracy is None else str(model_accuracy)
              if not isinstance(model_accuracy, pd.DataFrame) else "(DataFrame)"}
    prov = provenance(**params)
    facts = methods.study_facts(df, kept, excl, stimulus_set=stimulus_set, n_boot=n_boot,
                                normalization=settings["normalization"],
                                versions=prov["versions"], git_revision=prov["git_revision"],
                                models_acc=acc, where=where_table)
    text = methods.methods_text(facts)
    atomic_write_text(out / "methods.md", "# Methods\n\n" + text)
    record = {**prov, "inputs": inputs, "exclusions": excl.summary(), "notes": page.notes,
              "study": methods.summary_numbers(facts)}
    atomic_write_text(out / "provenance.json", json.dumps(record, indent=2, default=str))
    return _write_html(out, prov, inputs, excl.summary(), page,
                       [*methods.overview_rows(facts), *viewing.overview_rows(kept)], text)


def _split_categorical(out: Path, kept: pd.DataFrame) -> tuple[pd.DataFrame, list]:
    """Categorical experiments (model-vs-human's colour, rotation, sketch, …: no levels) are
    not fit: their accuracy per condition is one table. Returns the graded rows and it."""
    categorical = is_categorical(kept)
    if not categorical.any():
        return kept, []
    table = categorical_accuracy(kept)
    return kept[~categorical], [_table(
        out, "Accuracy per condition (categorical experiments)",
        "No curve is fit: one row per observer and condition, then the pooled row per observer "
        "type (observer_id 'all'); Wilson 95% intervals; guess = chance.",
        "categorical_accuracy.csv", table)]


def _table(out: Path, title: str, caption: str, name: str, df: pd.DataFrame,
           inline: int = INLINE_ROWS) -> dict:
    """Write ``df`` as CSV; the page shows it inline when short, else collapsed."""
    _write_csv(out, name, df)
    return {"title": title, "caption": caption, "file": name, "rows": len(df),
            "collapsed": len(df) > inline, "df": df}


def _graded_sections(out: Path, kept, acc, page: _Page, classes: dict, settings) -> dict:
    normalization, n_boot, seed = (settings["normalization"], settings["n_boot"],
                                   settings["seed"])
    curves = _labelled(accuracy_curves(kept))
    if "simulated" in set(curves["observer_type"]):
        page.notes.append("This report includes SIMULATED human observers (experiment."
                          "simulate); they are marked '(simulated)' in every table and figure.")
    page.detail_tables.append(_table(out, "Accuracy per level per observer",
                                     "Wilson 95% intervals.", "curves.csv", curves))
    pooled = pd.concat([pooled_curve(curves, t) for t in pd.unique(curves["observer_type"])
                        if t != "model"] or [pd.DataFrame()], ignore_index=True)
    if len(pooled):
        page.detail_tables.append(_table(out, "Pooled curve per observer type",
                                         "Summed counts, Wilson 95% intervals.",
                                         "pooled_curves.csv", pooled))
    fits = _fit_table(curves, n_boot, seed)
    page.detail_tables.append(_table(
        out, "Psychometric fits", f"Logistic on the dataset's scale, guess = chance, lapse "
        f"≤ 0.2, MLE; {n_boot} bootstrap resamples of trials.", "fits.csv", fits))

    scores, alignments = None, {}
    with_models = [d for d in pd.unique(kept["dataset"])
                   if (kept.loc[kept["dataset"] == d, "observer_type"] == "model").any()]
    for dataset in with_models:
        part = kept[kept["dataset"] == dataset]
        a = align(part, dataset=dataset, normalization=normalization, n_boot=n_boot, seed=seed)
        alignments[dataset] = a
        scores = a.scores if scores is None else pd.concat([scores, a.scores], ignore_index=True)
    harmonized = [m for m, c in classes.items() if c == "harmonized"]
    named = figures.choose_highlights(scores, settings["highlight"], harmonized=harmonized) \
        if scores is not None else []
    for dataset, a in alignments.items():
        ref = figures.reference_label(a.reference)
        _write_csv(out, f"normalized_curves_{dataset}.csv", a.curves)
        page.curves.append(_figure(
            out, figures.decision_curves_figure(a.curves, dataset, a.reference, normalization,
                                                named, classes),
            f"decision_curves_{dataset}", f"Decision curves: {ref} vs models ({dataset})",
            f"Accuracy normalized '{normalization}' against level; bands are 95% bootstrap "
            f"intervals over participants, images and levels ({n_boot} resamples), drawn for "
            f"the {ref} and the named models (the best, the worst, a harmonized one and any "
            "--highlight); every other model is a thin line coloured by its class. The y axis "
            "follows the curves; wider bands are clipped."))
    levels = {d: (float(r["level"].min()), float(r["level"].max()))
              for d, r in curves.groupby("dataset") if r["level"].notna().any()}
    page.detail_figures.append(_figure(
        out, figures_detail.observer_curves_figure(curves, named, classes), "observer_curves",
        "Per-observer decision curves", "Raw accuracy per level; people with Wilson 95% "
        "intervals (humans grey, simulated humans purple), named models dashed in colour, "
        "other models thin by class; the dotted line is chance. Observers with a median of "
        f"fewer than {figures_detail.MIN_TRIALS_PER_LEVEL} trials per level are counted, not "
        "drawn."))
    page.detail_figures.append(_figure(
        out, figures_detail.threshold_figure(fits, named, classes, levels), "thresholds",
        "Thresholds", "Each observer's fitted threshold (the level halfway between chance and "
        "1 − lapse) as a point, grouped (humans, simulated humans, each model class) with a "
        "violin where a group has five or more; named models are diamonds; thresholds beyond "
        "3× the tested range are open triangles at the edge. Intervals are in fits.csv."))
    if scores is None:
        page.notes.append("No model observers in the trials: alignment scores and the "
                          "accuracy-vs-alignment figure need model trial tables (python -m "
                          "models observe).")
        return alignments
    scores.insert(1, "reference_label", figures.reference_label(reference_type(kept)))
    _write_csv(out, "alignment.csv", scores)
    page.alignment = _alignment_summary(scores, n_boot, _shared_per_pair(kept))
    if acc is None:
        page.notes.append("No --model-accuracy CSV given: the ImageNet-accuracy vs alignment "
                          "figure is not drawn.")
        return alignments
    joined = scores.merge(acc, on="model_name", how="inner")
    lost = sorted(set(scores["model_name"]) - set(joined["model_name"]))
    if lost:
        page.notes.append(f"No ImageNet accuracy for {lost}: left out of the accuracy figure.")
    if len(joined):
        page.pareto.append(_figure(
            out, figures.accuracy_vs_alignment_figure(joined, "neg_log_mse", named, classes),
            "accuracy_vs_alignment", "ImageNet accuracy vs decision alignment",
            "Top-1 accuracy against −log MSE decision alignment (bars: 95% interval); the "
            "dashed line is the Pareto front of the non-harmonized models; harmonized models "
            "are red diamonds; named models are labelled."))
    return alignments


def _interval(v, lo, hi) -> str:
    if not np.isfinite(v):
        return "—"
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{v:.3g}"
    return f"{v:.3g} [{lo:.3g}, {hi:.3g}]"


#: Fewer trials shared by a person and a model at a level than this make the per-pair κ
#: degenerate (with one shared trial a defined κ is always 0), and the page says so.
MIN_SHARED_PER_PAIR = 5


def _shared_per_pair(kept: pd.DataFrame) -> float:
    """Median number of trials a reference observer has per level (each model sees them all)."""
    people = kept[(kept["observer_type"] == reference_type(kept)) & kept["level"].notna()]
    counts = people.groupby(["dataset", "observer_id", "level"]).size()
    return float(counts.median()) if len(counts) else float("nan")


def _alignment_summary(scores: pd.DataFrame, n_boot: int, shared: float = float("nan")) -> dict:
    """The page's alignment table: each score with its 95% interval, best −log MSE first.

    ``shared``: the median trials a person shares with a model per level; below
    ``MIN_SHARED_PER_PAIR`` the caption says the per-pair κ is not informative."""
    rows = scores.sort_values("neg_log_mse", ascending=False, kind="stable")
    table = pd.DataFrame({"model": rows["model_name"]})
    if rows["dataset"].nunique() > 1:
        table["dataset"] = rows["dataset"]
    for m in METRICS:
        if m in rows:
            table[METRIC_LABELS.get(m, m)] = [
                _interval(*map(float, t)) for t in
                zip(rows[m], rows[f"{m}_low"], rows[f"{m}_high"], strict=True)]
    ref = rows["reference_label"].iloc[0]
    return {"title": "Decision alignment per model",
            "caption": f"Each model against the pooled {ref}: −log MSE of the normalized "
                       "curves (higher is closer), correlation across levels, threshold ratio "
                       "(model / reference), error consistency κ pooled per level and per "
                       f"human–model pair; value [95% interval] over {n_boot} bootstrap "
                       "resamples. Best −log MSE first." + (
                           f" Per-pair κ: a person shares a median of {shared:g} trial(s) per "
                           "level with a model, too few for a κ per pair (with one shared "
                           "trial a defined κ is always 0); read the pooled κ."
                           if shared < MIN_SHARED_PER_PAIR else ""),
            "file": "alignment.csv", "rows": len(table), "collapsed": len(table) > INLINE_ROWS,
            "df": table}


def _where_section(out: Path, where, acc, page: _Page, classes: dict, settings) -> None:
    table = where.models.copy()
    control = None if where.control is None else float(where.control["score"])
    if control is not None:
        beats = table["score_low"] > control
        table["beats_centre_bias"] = beats
        page.where_text = (f"{int(beats.sum())} of {len(table)} model(s) beat the centre-bias "
                           f"control † (score {control:.3f}): the lower end of their 95% "
                           "interval is above it.")
    else:
        page.where_text = ("No centre-bias control in the --where results (run python -m "
                           "models where with --centre-bias to add it).")
    if where.maps_note and where.maps_note.upper().startswith("NOT HUMAN"):
        page.notes.append(f"The 'where' maps are NOT HUMAN: {where.maps_note}")
    page.where_tables.append(_table(
        out, "Feature alignment per model", "Spearman ρ with the human maps over the ceiling "
        "(score), its 95% interval from models where and its SD bootstrapped over images "
        "here; Dice and IoU of the top 10 % of pixels.", "feature_alignment.csv", table))
    if acc is None:
        page.notes.append("No --model-accuracy CSV given: feature alignment is not plotted "
                          "against ImageNet accuracy (the table is under \"Where\").")
        return
    joined = table.merge(acc, on="model_name", how="inner")
    lost = sorted(set(table["model_name"]) - set(joined["model_name"]))
    if lost:
        page.notes.append(f"No ImageNet accuracy for {lost}: left out of the feature-alignment "
                          "figure.")
    if len(joined) == 0:
        return
    named = figures.choose_highlights(joined, settings["highlight"], metric="score",
                                      harmonized=list(joined.loc[joined["harmonized"] == 1,
                                                                 "model_name"]))
    note = where.maps_note if where.maps_note.upper().startswith("NOT HUMAN") else ""
    page.where.append(_figure(
        out, figures_where.feature_alignment_figure(joined, control, named, classes,
                                                    note[:90]),
        "feature_alignment", "Feature alignment vs ImageNet accuracy",
        "Where a model looks against where people look: mean Spearman ρ between its gradient "
        "saliency and the human maps, over the human ceiling (± bootstrapped SD), against "
        "ImageNet top-1; dashed: Pareto front of the non-harmonized models; red diamonds: "
        "harmonized; dotted: the centre-bias control †."))


def _statistics_section(out: Path, kept, alignments, page: _Page, settings, say) -> None:
    """The statistics tables of ``analysis.stats`` (goodness of fit, curve differences,
    model comparisons, error consistency per pair, per-image difficulty)."""
    try:
        from analysis.stats import statistics_tables
    except ImportError:
        page.statistics_note = "analysis.stats is not installed with this suite."
        return
    graded = kept[kept["level"].notna()]
    if graded.empty:
        page.statistics_note = "No graded levels: nothing to test."
        return
    for title, caption, name, df in statistics_tables(
            kept, alignments, n_sim=settings["n_boot"], seed=settings["seed"],
            glmm=settings["glmm"], say=say):
        page.statistics.append(_table(out, title, caption, name, df))


def _html_table(df: pd.DataFrame):
    import jinja2

    html = df.head(MAX_HTML_ROWS).to_html(index=False, float_format=lambda v: f"{v:.4g}",
                                          na_rep="", border=0)
    return jinja2.utils.markupsafe.Markup(html)


def _write_html(out, prov, inputs, exclusions, page: _Page, overview, methods_md) -> Path:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent),
                             autoescape=True)

    def render(t):
        return {**{k: v for k, v in t.items() if k != "df"}, "html": _html_table(t["df"]),
                "shown": min(t["rows"], MAX_HTML_ROWS)}

    html = env.get_template("report_template.html").render(
        prov={**prov, "parameters_json": json.dumps(prov["parameters"], default=str),
              "versions_json": json.dumps(prov["versions"]),
              "command_text": " ".join(map(str, prov["command"]))},
        inputs=inputs, exclusions=exclusions, notes=page.notes, overview=overview,
        alignment=render(page.alignment) if page.alignment else None,
        curves=page.curves, pareto=page.pareto, where=page.where, where_text=page.where_text,
        where_tables=[render(t) for t in page.where_tables],
        statistics=[render(t) for t in page.statistics], statistics_note=page.statistics_note,
        detail_figures=page.detail_figures,
        detail_tables=[render(t) for t in page.detail_tables],
        methods=[p for p in methods_md.strip().split("\n\n") if p])
    return atomic_write_text(out / "index.html", html)


def add_arguments(parser) -> None:
    parser.add_argument("--trials", nargs="+", type=list_item(), required=True, metavar="PATH",
                        help="trial tables (suite CSVs or model-vs-human CSVs, or folders)")
    parser.add_argument("--out", required=True, help="output folder for the report")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier report in --out (only one the suite made)")
    parser.add_argument("--model-accuracy", default=None,
                        help="CSV with model_name, top1 (fraction), harmonized (1/0); see "
                             "docs/analysis.md")
    parser.add_argument("--where", nargs="+", type=list_item(), default=[], metavar="RESULTS",
                        help="JSON files of python -m models where --out: adds feature "
                             "alignment vs ImageNet accuracy (the 'where' half)")
    parser.add_argument("--stimuli", default=None, metavar="SET",
                        help="the stimulus set folder (stimulus_set.json): the page and the "
                             "methods state its design and where its maps came from")
    parser.add_argument("--highlight", nargs="+", type=list_item(), default=[], metavar="NAME",
                        help=f"models to name in the figures (at most {figures.MAX_NAMED}); "
                             "the best, the worst and a harmonized one are named anyway")
    parser.add_argument("--normalization", choices=METHODS, default=DEFAULT_METHOD)
    parser.add_argument("--n-boot", type=int_in(1, 100_000), default=DEFAULT_N_BOOT,
                        help=f"bootstrap resamples for the intervals (default {DEFAULT_N_BOOT})")
    parser.add_argument("--seed", type=int_at_least(0), default=0, help="random seed (default 0)")
    parser.add_argument("--no-statistics", dest="statistics", action="store_false",
                        help="leave out the statistics section (goodness of fit, curve and "
                             "model comparisons)")
    parser.add_argument("--glmm", action="store_true",
                        help="add the mixed model (crossed participant and image intercepts; "
                             "about a minute per model)")
    parser.add_argument("--min-top-accuracy", type=float_in(0, 1), default=0.5,
                        help="exclude participants at or below this accuracy on full/100%% images")
    parser.add_argument("--max-timeout-fraction", type=float_in(0, 1), default=0.2)
    parser.add_argument("--fast-rt-ms", type=float_in(0, 10_000), default=150.0)
    parser.add_argument("--max-fast-fraction", type=float_in(0, 1), default=0.1)
    parser.add_argument("--stimulus-deg-range", nargs="+", action=exactly(2),
                        type=list_item(float_in(0, 180, low_open=True)), default=None,
                        metavar="DEG",
                        help="LOW HIGH: exclude participants whose stimulus angle (degrees, "
                             "stimulus_deg) lies outside LOW-HIGH or was not recorded")


def main(args) -> int:
    rules = ExclusionRules(min_top_accuracy=args.min_top_accuracy,
                           max_timeout_fraction=args.max_timeout_fraction,
                           fast_rt_ms=args.fast_rt_ms, max_fast_fraction=args.max_fast_fraction,
                           stimulus_deg_range=None if args.stimulus_deg_range is None
                           else tuple(args.stimulus_deg_range))
    page = render_report(args.trials, args.out, args.model_accuracy, rules=rules,
                         normalization=args.normalization, n_boot=args.n_boot, seed=args.seed,
                         overwrite=args.overwrite, say=print, highlight=args.highlight,
                         where=args.where, stimuli=args.stimuli, statistics=args.statistics,
                         glmm=args.glmm)
    print(page)
    return 0
