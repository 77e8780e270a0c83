"""The model-vs-human importer: all 17 of the project's experiments, real and synthetic files,
experiments recognised by name, folder or conditions, and user-described experiments."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import import_mvh
from analysis.curves import accuracy_curves, count_matrix
from analysis.fit import fit_psychometric
from analysis.import_mvh import KNOWN_EXPERIMENTS, categorical_accuracy, read_model_vs_human
from analysis.load import DATASETS, load_trials
from suite.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ("airplane", "bear", "bicycle", "bird", "boat", "bottle", "car", "cat", "chair",
           "clock", "dog", "elephant", "keyboard", "knife", "oven", "truck")
HEADER = "subj,Session,trial,rt,object_response,category,condition,imagename"


@pytest.fixture(autouse=True)
def _no_described_leftovers():
    """Experiments described in one test are not seen by the next."""
    import_mvh.DESCRIBED.clear()
    yield
    import_mvh.DESCRIBED.clear()


def write_mvh(path: Path, conditions, p_correct, n_per_condition=40, subject="subject-01",
              seed=0, header=HEADER, model=False) -> Path:
    """A raw file in model-vs-human's format; p_correct(condition) gives each condition's
    chance of a right answer, the rest spread over the 15 wrong classes."""
    rng = np.random.default_rng(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines, trial = [header], 0
    order = [c for c in conditions for _ in range(n_per_condition)]
    for cond in rng.permutation(np.array(order, dtype=object)):
        trial += 1
        cat = CLASSES[rng.integers(16)]
        if rng.random() < p_correct(cond):
            answer = cat
        else:
            answer = rng.choice([c for c in CLASSES if c != cat])
        rt = "NaN" if model else f"{rng.uniform(0.4, 1.4):.6f}"
        if not model and rng.random() < 0.01:
            answer, rt = "na", "NaN"
        image = f"{trial:04d}_xx_s01_{cond}_{cat}_10_n0{rng.integers(1e6, 9e6)}_{trial}.png"
        lines.append(f"{subject},1,{trial},{rt},{answer},{cat},{cond},{image}")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def raw_rows(path: Path):
    return [line.split(",") for line in path.read_text(encoding="utf-8").splitlines()[1:]]


# --- the four experiments shipped in ../shared/data -----------------------------------------

REAL = {"contrast": ("log10", True), "low-pass": ("linear", False),
        "uniform-noise": ("linear", False), "phase-scrambling": ("linear", False)}


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_experiment_imports_and_fits_on_its_scale(name, mvh_raw):
    df = load_trials([mvh_raw / name])
    scale, increasing = REAL[name]
    assert set(df["dataset"]) == {name} and df["observer_type"].eq("human").all()
    assert df["fit_scale"].eq(scale).all() and df["increasing"].eq(increasing).all()
    assert df["level"].notna().all() and df["guess"].eq(1 / 16).all()
    cm = count_matrix(accuracy_curves(df), name)
    k, n = cm.n_correct.sum(axis=0), cm.n_trials.sum(axis=0)
    fit = fit_psychometric(cm.levels, k, n, guess=cm.guess, scale=cm.fit_scale,
                           increasing=cm.increasing)
    assert bool(fit.converged)
    assert cm.levels.min() < float(fit.threshold) < cm.levels.max()
    # The fit's direction is the data's: the easy end is the more accurate one.
    acc = k / n
    easy, hard = (acc[-1], acc[0]) if increasing else (acc[0], acc[-1])
    assert easy > 0.75 and hard < 0.4
    ends = fit.predict(cm.levels[[0, -1]])
    assert (ends[1] > ends[0]) == increasing


def test_contrast_conditions_are_percent_levels(mvh_raw):
    df = read_model_vs_human(mvh_raw / "contrast" / "contrast_subject-01_session_1.csv")
    raw = raw_rows(mvh_raw / "contrast" / "contrast_subject-01_session_1.csv")
    expected = [float(r[6][1:]) for r in raw]          # c05 -> 5
    assert df["level"].tolist() == expected
    assert df["level_percent"].tolist() == expected


# --- the other 13 datasets, synthetic files in the real format -----------------------------

GRADED = {
    # name: (conditions as the raw files write them, level of each, scale, increasing)
    "high-pass": (["inf", "3", "1.5", "1", "0.7", "0.55", "0.45", "0.4"],
                  [np.nan, 3, 1.5, 1, 0.7, 0.55, 0.45, 0.4], "log10", True),
    "eidolonI": ([f"{2 ** i}-10-10" for i in range(8)], list(range(8)), "linear", False),
    "eidolonII": ([f"{2 ** i}-3-10" for i in range(8)], list(range(8)), "linear", False),
    "eidolonIII": ([f"{2 ** i}-0-10" for i in range(8)], list(range(8)), "linear", False),
}


def _curve(threshold_x, increasing, scale):
    """ψ for a logistic with the given threshold on the fit axis (16-class chance)."""
    def p(level):
        if np.isnan(level):
            return 0.95
        x = np.log10(level) if scale == "log10" else level
        u = (x - threshold_x) if increasing else (threshold_x - x)
        return 1 / 16 + (0.95 - 1 / 16) / (1 + np.exp(-u / 0.12 * (1 if scale == "log10" else 4)))
    return p


@pytest.mark.parametrize("name", sorted(GRADED))
def test_graded_experiment_levels_scale_direction_and_fit(tmp_path, name):
    conds, levels, scale, increasing = GRADED[name]
    level_of = dict(zip(conds, levels, strict=True))
    truth = np.log10(0.8) if scale == "log10" else 3.5
    p = _curve(truth, increasing, scale)
    files = [write_mvh(tmp_path / name / f"{name}_subject-0{s}_session_1.csv", conds,
                       lambda c: p(level_of[c]), n_per_condition=80, subject=f"subject-0{s}",
                       seed=s) for s in (1, 2, 3)]
    df = load_trials([tmp_path / name])
    raw = raw_rows(files[0])
    first = df[df["source_file"] == str(files[0])]
    assert np.allclose(first["level"], [level_of[r[6]] for r in raw], equal_nan=True)
    assert df["dataset"].eq(name).all()
    assert df["fit_scale"].eq(scale).all() and df["increasing"].eq(increasing).all()
    assert DATASETS[name].fit_scale == scale
    cm = count_matrix(accuracy_curves(df), name)
    assert not np.isnan(cm.levels).any()              # "inf" (unfiltered) is not on the curve
    fit = fit_psychometric(cm.levels, cm.n_correct.sum(axis=0), cm.n_trials.sum(axis=0),
                           guess=cm.guess, scale=cm.fit_scale, increasing=cm.increasing)
    assert float(fit.threshold_x) == pytest.approx(truth, abs=0.15 if scale == "log10" else 0.4)


def test_high_pass_numbers_match_whatever_their_spelling(tmp_path):
    path = write_mvh(tmp_path / "high-pass_subject-01_session_1.csv", ["3.0", "1.0", "inf"],
                     lambda c: 0.9, n_per_condition=5)
    df = read_model_vs_human(path)
    assert sorted(df["level"].dropna().unique()) == [1.0, 3.0]
    assert df.loc[df["condition"] == "inf", "level"].isna().all()


CATEGORICAL = {
    "colour": ["cr", "bw"],
    "power-equalisation": ["0", "pow"],
    "false-colour": ["True", "False"],
    "rotation": ["0", "90", "180", "270"],
    "sketch": ["0"], "stylized": ["0"], "edge": ["0"], "silhouette": ["0"],
    "cue-conflict": ["NaN"],
}


@pytest.mark.parametrize("name", sorted(CATEGORICAL))
def test_categorical_experiment_is_accuracy_per_condition(tmp_path, name):
    conds = CATEGORICAL[name]
    p = {c: 0.9 - 0.2 * i for i, c in enumerate(conds)}
    # sketch, stylized, edge, silhouette and cue-conflict write "session" in lower case
    header = HEADER if len(conds) > 1 else HEADER.replace("Session", "session")
    files = [write_mvh(tmp_path / f"{name}_subject-0{s}_session_1.csv", conds[::-1],
                       p.get, n_per_condition=30, subject=f"subject-0{s}", seed=s,
                       header=header) for s in (1, 2)]
    df = load_trials(files)
    assert df["dataset"].eq(name).all() and df["level"].isna().all()
    assert df["fit_scale"].eq("categorical").all()
    with pytest.raises(InputError, match="no trials with a level"):   # no curve to fit
        accuracy_curves(df)
    table = categorical_accuracy(df)
    rows = [r for f in files for r in raw_rows(f)]
    labels = conds if len(conds) > 1 else ["all"]
    pooled = table[table["observer_id"] == "all"]
    assert pooled["condition"].tolist() == labels     # the registry's order, reference first
    for label, cond in zip(labels, conds, strict=True):
        mine = [r for r in rows if r[6] == cond]
        row = pooled[pooled["condition"] == label].iloc[0]
        assert row["n_trials"] == len(mine)
        assert row["n_correct"] == sum(r[4] == r[5] for r in mine)
        assert row["n_observers"] == 2
    per = table[table["observer_id"] == "subject-01"]
    assert per["n_trials"].sum() == len(raw_rows(files[0]))


def test_every_model_vs_human_dataset_is_in_the_registry():
    names = {*REAL, *GRADED, *CATEGORICAL}
    assert len(names) == 17 and names == set(KNOWN_EXPERIMENTS)


def test_model_files_are_model_observers(tmp_path):
    path = write_mvh(tmp_path / "rotation_resnet50_session-1.csv", ["0", "90"], lambda c: 0.7,
                     n_per_condition=10, subject="resnet50", model=True)
    df = read_model_vs_human(path)
    assert df["observer_type"].eq("model").all() and df["model_name"].eq("resnet50").all()
    assert df["timeout"].eq(0).all()


# --- recognising the experiment ------------------------------------------------------------

def test_experiment_from_folder_then_from_conditions(tmp_path):
    by_folder = write_mvh(tmp_path / "eidolonII" / "s1.csv", ["1-3-10", "4-3-10"],
                          lambda c: 0.8, n_per_condition=5)
    assert read_model_vs_human(by_folder)["dataset"].eq("eidolonII").all()
    by_values = write_mvh(tmp_path / "mine" / "s1.csv", ["bw", "cr"], lambda c: 0.8,
                          n_per_condition=5)
    assert read_model_vs_human(by_values)["dataset"].eq("colour").all()
    ambiguous = write_mvh(tmp_path / "other" / "s1.csv", ["0"], lambda c: 0.8,
                          n_per_condition=5)
    with pytest.raises(InputError, match="cannot tell the experiment.*power-equalisation"):
        read_model_vs_human(ambiguous)


def test_a_condition_the_experiment_does_not_have_is_refused(tmp_path):
    path = write_mvh(tmp_path / "rotation_subject-01_session_1.csv", ["0", "45"],
                     lambda c: 0.8, n_per_condition=5)
    with pytest.raises(InputError, match=r"condition '45' is not one of experiment 'rotation'"):
        read_model_vs_human(path)


# --- experiments the suite does not know ---------------------------------------------------

def test_unknown_experiment_error_says_how_to_describe_it(tmp_path):
    path = write_mvh(tmp_path / "blur-steps_subject-01_session_1.csv", ["1", "2"],
                     lambda c: 0.8, n_per_condition=5)
    with pytest.raises(InputError) as err:
        load_trials([path])
    text = str(err.value)
    assert "'blur-steps'" in text and str(tmp_path / "experiments.toml") in text
    for word in ("[blur-steps]", "kind", "scale", "direction", "guess", "categorical"):
        assert word in text


def test_unknown_experiment_through_the_cli_is_one_error_line(tmp_path):
    write_mvh(tmp_path / "data" / "blur-steps_subject-01_session_1.csv", ["1", "2"],
              lambda c: 0.8, n_per_condition=5)
    run = subprocess.run([sys.executable, "-m", "analysis", "report", "--trials",
                          str(tmp_path / "data"), "--out", str(tmp_path / "r")],
                         capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and "experiments.toml" in lines[0]
    assert not (tmp_path / "r").exists()


DESCRIPTION = """
[blur-steps]                 # a 4-way task, blur in px, more blur is harder
kind = "graded"
guess = 0.25
scale = "linear"
direction = "decreasing"
label = "blur (px)"
full = ["none"]

[viewpoint]
kind = "categorical"
guess = 0.25
conditions = ["front", "side", "back"]
"""


def test_described_experiments_import_with_their_description(tmp_path):
    data = tmp_path / "data"
    graded = write_mvh(data / "blur-steps_subject-01_session_1.csv", ["none", "0.5", "2", "8"],
                       lambda c: 0.8, n_per_condition=6)
    cat = write_mvh(data / "viewpoint_subject-01_session_1.csv", ["back", "front", "side"],
                    lambda c: 0.8, n_per_condition=6)
    (data / "experiments.toml").write_text(DESCRIPTION, encoding="utf-8")
    df = load_trials([graded, cat])
    blur = df[df["dataset"] == "blur-steps"]
    assert blur["guess"].eq(0.25).all() and blur["fit_scale"].eq("linear").all()
    assert not blur["increasing"].any()
    assert sorted(blur["level"].dropna().unique()) == [0.5, 2.0, 8.0]
    assert blur.loc[blur["condition"] == "none", "level"].isna().all()
    assert DATASETS["blur-steps"].level_name == "blur (px)"
    view = categorical_accuracy(df[df["dataset"] == "viewpoint"])
    assert view.loc[view["observer_id"] == "all", "condition"].tolist() == \
        ["front", "side", "back"]
    assert view["guess"].eq(0.25).all()


def test_description_in_the_folder_above_is_found(tmp_path):
    path = write_mvh(tmp_path / "viewpoint" / "viewpoint_subject-01_session_1.csv",
                     ["front"], lambda c: 0.8, n_per_condition=4)
    (tmp_path / "experiments.toml").write_text(DESCRIPTION, encoding="utf-8")
    assert read_model_vs_human(path)["dataset"].eq("viewpoint").all()


@pytest.mark.parametrize("text, message", [
    ('[x]\nkind = "graded"\nscale = "log"\ndirection = "increasing"\n', "scale must be one of"),
    ('[x]\nkind = "graded"\nscale = "linear"\n', "direction must be"),
    ('[x]\nkind = "curve"\n', "kind must be one of"),
    ('[x]\nkind = "categorical"\nscale = "linear"\n', "categorical experiment has no scale"),
    ('[x]\nkind = "categorical"\nguess = 1.5\n', "guess is the chance rate"),
    ('[x]\nkind = "categorical"\ncolour = 1\n', "unknown key"),
    ('[x]\nkind = "graded"\nscale = "log10"\ndirection = "increasing"\nlevels = { a = 0 }\n',
     "must be > 0 on the log10 scale"),
    ('[contrast]\nkind = "categorical"\n', "built-in"),
    ("[x\n", "not valid TOML"),
])
def test_bad_descriptions_are_refused_naming_the_file(tmp_path, text, message):
    path = write_mvh(tmp_path / "x_subject-01_session_1.csv", ["1"], lambda c: 0.8,
                     n_per_condition=3)
    (tmp_path / "experiments.toml").write_text(text, encoding="utf-8")
    with pytest.raises(InputError, match=message) as err:
        read_model_vs_human(path)
    assert str(tmp_path / "experiments.toml") in str(err.value)


# --- the report ----------------------------------------------------------------------------

def test_report_shows_categorical_experiments_as_a_table(tmp_path, mvh_raw):
    data = tmp_path / "data"
    for s in (1, 2, 3):
        write_mvh(data / f"rotation_subject-0{s}_session_1.csv", ["0", "90", "180", "270"],
                  lambda c: 0.9 if c == "0" else 0.7, n_per_condition=20,
                  subject=f"subject-0{s}", seed=s)
        write_mvh(data / f"sketch_subject-0{s}_session_1.csv", ["0"], lambda c: 0.85,
                  n_per_condition=40, subject=f"subject-0{s}", seed=10 + s,
                  header=HEADER.replace("Session", "session"))
    out = tmp_path / "report"
    run = subprocess.run([sys.executable, "-m", "analysis", "report", "--trials",
                          str(mvh_raw / "contrast"), str(data), "--out", str(out),
                          "--n-boot", "20"],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert run.returncode == 0, run.stderr
    table = pd.read_csv(out / "categorical_accuracy.csv", keep_default_na=False)
    trials = load_trials([data])
    kept = trials[trials["timeout"] == 0]
    pooled = table[table["observer_id"] == "all"]
    assert pooled[["dataset", "condition"]].values.tolist() == [
        ["rotation", "0"], ["rotation", "90"], ["rotation", "180"], ["rotation", "270"],
        ["sketch", "all"]]
    rot0 = kept[(kept["dataset"] == "rotation") & (kept["condition"] == "0")]
    assert pooled.iloc[0]["accuracy"] == pytest.approx(rot0["correct"].mean())
    fits = pd.read_csv(out / "fits.csv")
    assert set(fits["dataset"]) == {"contrast"}      # categorical ones are not fit
    html = (out / "index.html").read_text(encoding="utf-8")
    assert "Accuracy per condition" in html and "categorical_accuracy.csv" in html


def test_report_of_categorical_experiments_only(tmp_path):
    from analysis.report import render_report

    for s in (1, 2):
        write_mvh(tmp_path / "d" / f"colour_subject-0{s}_session_1.csv", ["cr", "bw"],
                  lambda c: 0.9, n_per_condition=20, subject=f"subject-0{s}", seed=s)
    page = render_report([tmp_path / "d"], tmp_path / "r", n_boot=10)
    table = pd.read_csv(tmp_path / "r" / "categorical_accuracy.csv")
    assert table.loc[table["observer_id"] == "all", "condition"].tolist() == ["cr", "bw"]
    assert not (tmp_path / "r" / "fits.csv").exists()
    assert "Accuracy per condition" in page.read_text(encoding="utf-8")
