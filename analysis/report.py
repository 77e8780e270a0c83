"""``python -m analysis report``: curves, fits, alignment, figures and one HTML page.

Model accuracy CSV (``--model-accuracy``): columns ``model_name, top1, harmonized`` —
ImageNet top-1 as a fraction in [0, 1], harmonized 1/0; ``model_name`` as in the trials.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from analysis import figures
from analysis.align import align, reference_type
from analysis.bootstrap import DEFAULT_N_BOOT, bootstrap_fit
from analysis.curves import accuracy_curves, count_matrix, pooled_curve
from analysis.exclusions import ExclusionRules, apply_exclusions
from analysis.import_mvh import categorical_accuracy, is_categorical
from analysis.load import load_trials
from analysis.normalize import DEFAULT_METHOD, METHODS
from analysis.trial_checks import check_input_files, check_unique_trials, split_shared_observers
from suite.atomic import atomic_write_bytes, atomic_write_text
from suite.cli_types import float_in, int_in
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


def _check_paths(trials, out: Path, model_accuracy, overwrite: bool) -> list | None:
    """Refuse a bad --out, a trial table given twice, a bad accuracy file: before any work."""
    paths = None
    if not isinstance(trials, pd.DataFrame):
        paths = [trials] if isinstance(trials, str | os.PathLike) else list(trials)
    named = list(paths or [])
    if model_accuracy is not None and not isinstance(model_accuracy, pd.DataFrame):
        named.append(model_accuracy)
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


def render_report(trials: pd.DataFrame | Iterable[str | os.PathLike], out_dir,
                  model_accuracy: str | os.PathLike | pd.DataFrame | None = None, *,
                  rules: ExclusionRules | None = None, normalization: str = DEFAULT_METHOD,
                  n_boot: int = DEFAULT_N_BOOT, seed: int = 0, overwrite: bool = False,
                  say: Callable[[str], object] | None = None) -> Path:
    """Write figures (PNG), tables (CSV), provenance and index.html into out_dir; return the page.

    The report is built in a hidden sibling folder and swapped in only when complete, so a
    failure leaves an earlier report exactly as it was (and a new folder not made at all).
    An existing non-empty ``out_dir`` needs ``overwrite`` and must be a report the suite
    made. ``say`` (e.g. ``print``) receives the lines a person must see: exclusions and
    warnings; they are also at the top of the page.
    """
    out = Path(out_dir)
    paths = _check_paths(trials, out, model_accuracy, overwrite)
    acc = None
    if model_accuracy is not None:
        acc = model_accuracy if isinstance(model_accuracy, pd.DataFrame) \
            else read_model_accuracy(model_accuracy)
    inputs = []
    if paths is None:
        df = trials
        inputs.append({"path": "(DataFrame given in Python)", "sha256": "", "rows": len(df)})
    else:
        df = load_trials(paths)
        for src, rows in df.groupby("source_file", sort=False):
            inputs.append({"path": src, "sha256": file_sha256(src), "rows": len(rows)})
    check_unique_trials(df)
    df, warnings_ = split_shared_observers(df)
    kept, excl = apply_exclusions(df, rules)
    _check_references(kept)
    headline = excl.headline()
    for line in (headline, *warnings_):
        if say is not None:
            say(line)
    with building_folder(out, "analysis report") as tmp:
        _write_report(tmp, kept, excl, inputs, acc, model_accuracy, warnings_,
                      normalization=normalization, n_boot=n_boot, seed=seed)
    return out / "index.html"


def _write_report(out: Path, kept, excl, inputs, acc, model_accuracy, warnings_, *,
                  normalization: str, n_boot: int, seed: int) -> Path:
    notes, figs, tables = list(warnings_), [], []
    graded, categorical = _split_categorical(out, kept)
    if not graded.empty:
        _graded_sections(out, graded, acc, notes, figs, tables, normalization=normalization,
                         n_boot=n_boot, seed=seed)
    tables.extend(categorical)
    excl_table = _labelled(excl.observers.assign(model_name=""))
    tables.append(("Observers and exclusions", "Per-observer statistics behind the rules.",
                   _write_csv(out, "exclusions.csv", excl_table)))

    params = {"trials": [i["path"] for i in inputs], "normalization": normalization,
              "n_boot": n_boot, "seed": seed, "exclusions": asdict(excl.rules),
              "model_accuracy": None if model_accuracy is None else str(model_accuracy)
              if not isinstance(model_accuracy, pd.DataFrame) else "(DataFrame)"}
    prov = provenance(**params)
    record = {**prov, "inputs": inputs, "exclusions": excl.summary(), "notes": notes}
    atomic_write_text(out / "provenance.json", json.dumps(record, indent=2, default=str))
    return _write_html(out, prov, inputs, excl.summary(), notes, figs, tables)


def _split_categorical(out: Path, kept: pd.DataFrame) -> tuple[pd.DataFrame, list]:
    """Categorical experiments (model-vs-human's colour, rotation, sketch, …: no levels) are
    not fit: their accuracy per condition is one table. Returns the graded rows and it."""
    categorical = is_categorical(kept)
    if not categorical.any():
        return kept, []
    table = categorical_accuracy(kept)
    return kept[~categorical], [(
        "Accuracy per condition (categorical experiments)",
        "No curve is fit: one row per observer and condition, then the pooled row per observer "
        "type (observer_id 'all'); Wilson 95% intervals; guess = chance.",
        _write_csv(out, "categorical_accuracy.csv", table))]


def _graded_sections(out: Path, kept, acc, notes, figs, tables, *, normalization: str,
                     n_boot: int, seed: int) -> None:
    curves = _labelled(accuracy_curves(kept))
    if "simulated" in set(curves["observer_type"]):
        notes.append("This report includes SIMULATED human observers (experiment.simulate); "
                     "they are marked '(simulated)' in every table and figure.")

    tables.append(("Accuracy per level per observer", "Wilson 95% intervals.",
                   _write_csv(out, "curves.csv", curves)))
    pooled = pd.concat([pooled_curve(curves, t) for t in pd.unique(curves["observer_type"])
                        if t != "model"] or [pd.DataFrame()], ignore_index=True)
    if len(pooled):
        tables.append(("Pooled curve per observer type", "Summed counts, Wilson 95% intervals.",
                       _write_csv(out, "pooled_curves.csv", pooled)))
    fits = _fit_table(curves, n_boot, seed)
    tables.append(("Psychometric fits", f"Logistic on the dataset's scale, guess = chance, "
                   f"lapse ≤ 0.2, MLE; {n_boot} bootstrap resamples of trials.",
                   _write_csv(out, "fits.csv", fits)))
    atomic_write_bytes(out / "observer_curves.png", figures.observer_curves_png(curves))
    figs.append(("Per-observer decision curves", "Raw accuracy per level with Wilson 95% "
                 "intervals; humans grey, simulated humans purple, models dashed orange; the "
                 "dotted line is chance. Observers with a median of fewer than "
                 f"{figures.MIN_TRIALS_PER_LEVEL} trials per level are counted, not drawn.",
                 "observer_curves.png"))
    atomic_write_bytes(out / "thresholds.png", figures.threshold_png(fits))
    figs.append(("Thresholds", "Level at which accuracy is halfway between chance and "
                 "1 − lapse, with 95% bootstrap intervals.", "thresholds.png"))

    scores = None
    with_models = [d for d in pd.unique(kept["dataset"])
                   if (kept.loc[kept["dataset"] == d, "observer_type"] == "model").any()]
    for dataset in with_models:
        part = kept[kept["dataset"] == dataset]
        a = align(part, dataset=dataset, normalization=normalization, n_boot=n_boot, seed=seed)
        ref = figures.reference_label(a.reference)
        scores = a.scores if scores is None else pd.concat([scores, a.scores], ignore_index=True)
        _write_csv(out, f"normalized_curves_{dataset}.csv", a.curves)
        name = f"decision_curves_{dataset}.png"
        atomic_write_bytes(out / name, figures.decision_curves_png(
            a.curves, dataset, a.reference, normalization))
        figs.append((f"Decision curves: {ref} vs models ({dataset})",
                     f"Accuracy normalized '{normalization}' vs level (log axis); bands are "
                     f"95% bootstrap intervals over participants, images and levels "
                     f"({n_boot} resamples).", name))
    if scores is None:
        notes.append("No model observers in the trials: alignment scores and the accuracy-vs-"
                     "alignment figure need model trial tables (python -m models observe).")
    else:
        scores.insert(1, "reference_label", figures.reference_label(reference_type(kept)))
        tables.append(("Decision alignment per model", "−log MSE of normalized curves (model "
                       "vs reference), correlation across levels, threshold ratio "
                       "(model/reference) and error consistency κ, with 95% intervals.",
                       _write_csv(out, "alignment.csv", scores)))
        if acc is None:
            notes.append("No --model-accuracy CSV given: the ImageNet-accuracy vs alignment "
                         "figure is not drawn.")
        else:
            joined = scores.merge(acc, on="model_name", how="inner")
            lost = sorted(set(scores["model_name"]) - set(joined["model_name"]))
            if lost:
                notes.append(f"No ImageNet accuracy for {lost}: left out of the accuracy "
                             "figure.")
            if len(joined):
                atomic_write_bytes(out / "accuracy_vs_alignment.png",
                                   figures.accuracy_vs_alignment_png(joined))
                figs.append(("ImageNet accuracy vs decision alignment",
                             "Top-1 accuracy against −log MSE alignment (95% interval); the "
                             "dashed line is the Pareto front of non-harmonized models.",
                             "accuracy_vs_alignment.png"))


def _write_html(out, prov, inputs, exclusions, notes, figs, tables) -> Path:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent),
                             autoescape=True)
    rendered_tables = []
    for title, caption, name in tables:
        df = pd.read_csv(out / name)
        html = df.head(200).to_html(index=False, float_format=lambda v: f"{v:.4g}",
                                    na_rep="", border=0)
        rendered_tables.append({"title": title, "caption": caption, "file": name,
                                "html": jinja2.utils.markupsafe.Markup(html)})
    page = env.get_template("report_template.html").render(
        prov={**prov, "parameters_json": json.dumps(prov["parameters"], default=str),
              "versions_json": json.dumps(prov["versions"]),
              "command_text": " ".join(map(str, prov["command"]))},
        inputs=inputs, exclusions=exclusions, notes=notes,
        figures=[{"title": t, "caption": c, "file": f} for t, c, f in figs],
        tables=rendered_tables)
    return atomic_write_text(out / "index.html", page)


def add_arguments(parser) -> None:
    parser.add_argument("--trials", nargs="+", required=True,
                        help="trial tables (suite CSVs or model-vs-human CSVs, or folders)")
    parser.add_argument("--out", required=True, help="output folder for the report")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier report in --out (only one the suite made)")
    parser.add_argument("--model-accuracy", default=None,
                        help="CSV with model_name, top1 (fraction), harmonized (1/0); see "
                             "docs/analysis.md")
    parser.add_argument("--normalization", choices=METHODS, default=DEFAULT_METHOD)
    parser.add_argument("--n-boot", type=int_in(1, 100_000), default=DEFAULT_N_BOOT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-top-accuracy", type=float_in(0, 1), default=0.5,
                        help="exclude participants at or below this accuracy on full/100%% images")
    parser.add_argument("--max-timeout-fraction", type=float_in(0, 1), default=0.2)
    parser.add_argument("--fast-rt-ms", type=float_in(0, 10_000), default=150.0)
    parser.add_argument("--max-fast-fraction", type=float_in(0, 1), default=0.1)


def main(args) -> int:
    rules = ExclusionRules(min_top_accuracy=args.min_top_accuracy,
                           max_timeout_fraction=args.max_timeout_fraction,
                           fast_rt_ms=args.fast_rt_ms, max_fast_fraction=args.max_fast_fraction)
    page = render_report(args.trials, args.out, args.model_accuracy, rules=rules,
                         normalization=args.normalization, n_boot=args.n_boot, seed=args.seed,
                         overwrite=args.overwrite, say=print)
    print(page)
    return 0
