"""The report's promises about its inputs and its folder (issue 12): each trial counted once,
one observer per session when ids repeat across lists, perfect agreement without inf or
warnings, an atomic report folder, bad output paths refused up front, and the exclusions
said plainly at the top."""

import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis.__main__ import COMMANDS
from analysis.align import NEG_LOG_MSE_CAP, align
from analysis.report import render_report
from suite.command_line import dispatch
from suite.errors import InputError
from suite.outputs import MARK
from tests.support.permissions import unwritable
from tests.support.synthetic_trials import LEVELS, synthetic_trials, write_synthetic

ROOT = Path(__file__).resolve().parents[1]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "analysis", "report", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def _small(tmp_path, name="t.csv", **kw):
    kw.setdefault("models", {"net": (10, 0.2)})
    return write_synthetic(tmp_path / name, n_humans=4, n_images=22, **kw)


# item 3: each trial once ---------------------------------------------------------------

def test_same_file_twice_is_refused_before_any_output(tmp_path):
    t = _small(tmp_path)
    run = _cli("--trials", t, t, "--out", tmp_path / "r", "--n-boot", "20")
    assert run.returncode == 2
    assert run.stderr.startswith("error: ") and "given twice" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "r").exists()
    # the same file by another path, or inside a folder also given
    with pytest.raises(InputError, match="given twice"):
        render_report([t, tmp_path / "." / "t.csv"], tmp_path / "r", n_boot=20)
    with pytest.raises(InputError, match="given twice"):
        render_report([tmp_path, t], tmp_path / "r", n_boot=20)


def test_a_file_and_its_copy_are_refused_naming_both(tmp_path):
    t = _small(tmp_path)
    copy = tmp_path / "copy.csv"
    shutil.copy(t, copy)
    with pytest.raises(InputError, match=r"t\.csv and .*copy\.csv hold the same trials "
                                         r"\(330 repeated"):
        render_report([t, copy], tmp_path / "r", n_boot=20)
    assert not (tmp_path / "r").exists()


def test_a_repeated_row_within_one_file_is_refused(tmp_path):
    df = synthetic_trials(n_humans=2, n_images=22)
    df = pd.concat([df, df.iloc[[5]]], ignore_index=True)
    path = tmp_path / "dup.csv"
    df.to_csv(path, index=False)
    with pytest.raises(InputError, match=r"dup\.csv: 1 trial row\(s\) appear more than once "
                                         r"in this file \(e\.g\. observer synthetic-00"):
        render_report([path], tmp_path / "r", n_boot=20)


def test_real_model_vs_human_files_have_no_repeated_trials(mvh_raw):
    from analysis.load import load_trials
    from analysis.trial_checks import check_unique_trials

    check_unique_trials(load_trials([mvh_raw]))  # raises on a false positive


# item 4: one observer id on several lists ---------------------------------------------

def _shared_ids(n_lists=4, repeats=3):
    """What `experiment simulate` wrote per list: the same ids sim-001-01…03 on every list."""
    df = synthetic_trials(n_humans=n_lists * repeats, n_images=22, observer_type="simulated",
                          models={"net": (10, 0.2)})
    person = df["observer_type"] == "simulated"
    df[["list_id", "session_id"]] = df[["list_id", "session_id"]].astype(object)
    h = df.loc[person, "observer_id"].str[-2:].astype(int)
    lst, rep = h % n_lists + 1, h // n_lists + 1
    df.loc[person, "observer_id"] = [f"sim-001-{r:02d}" for r in rep]
    df.loc[person, "list_id"] = [f"list-{k:02d}" for k in lst]
    df.loc[person, "session_id"] = [f"sim-001-{r:02d}-list-{k:02d}"
                                    for r, k in zip(rep, lst, strict=True)]
    return df


def test_sessions_sharing_an_observer_id_across_lists_count_as_observers(tmp_path):
    path = tmp_path / "sim.csv"
    _shared_ids().to_csv(path, index=False)
    run = _cli("--trials", path, "--out", tmp_path / "r", "--n-boot", "20")
    assert run.returncode == 0, run.stderr
    observers = pd.read_csv(tmp_path / "r" / "exclusions.csv")
    per = observers[observers["observer_type"] == "simulated"].set_index("observer_id")["n_trials"]
    assert len(per) == 12 and per.eq(22).all()          # 12 observers of 22, not 3 of 88
    assert "sim-001-01@sim-001-01-list-02" in per.index
    warning = [line for line in run.stdout.splitlines() if line.startswith("WARNING")]
    assert len(warning) == 1 and "3 observer id(s) span several trial lists" in warning[0]
    assert "3 observer id(s) span several trial lists" in \
        (tmp_path / "r" / "index.html").read_text(encoding="utf-8")


def test_one_person_on_one_list_over_sessions_is_not_split(tmp_path):
    df = synthetic_trials(n_humans=3, n_images=22, models={"net": (10, 0.2)})
    df["list_id"] = "list-01"
    df["session_id"] = np.where(df["trial"] <= 11, "s1", "s2")
    from analysis.trial_checks import split_shared_observers

    loaded = df.assign(dataset="animal-vs-non-animal")
    out, notes = split_shared_observers(loaded)
    assert notes == [] and out["observer_id"].equals(df["observer_id"])


# item 5: perfect agreement -------------------------------------------------------------

def _typed(df):
    df = df.copy()
    df["dataset"], df["level"] = "animal-vs-non-animal", df["level_percent"]
    df["guess"], df["fit_scale"], df["increasing"] = 0.5, "log10", True
    return df


def test_resamples_with_zero_mse_are_capped_not_inf():
    df = _typed(synthetic_trials(n_humans=4, n_images=22, models={"net": (10, 0.2)}))
    df["correct"] = 1
    # the model differs from the humans at the lowest level only: resamples that leave that
    # level out agree perfectly (MSE 0)
    low = (df["observer_type"] == "model") & (df["level_percent"] == LEVELS[0])
    df.loc[low, "correct"] = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = align(df, n_boot=200, seed=3).scores.iloc[0]
    assert np.isfinite(s["neg_log_mse"]) and s["neg_log_mse"] < NEG_LOG_MSE_CAP
    assert s["neg_log_mse_high"] == pytest.approx(NEG_LOG_MSE_CAP)
    assert np.isfinite(s["neg_log_mse_sd"]) and s["neg_log_mse_sd"] > 0
    assert 20 < s["neg_log_mse_perfect_resamples"] < 180
    assert not s["neg_log_mse_perfect"]


def test_perfect_agreement_report_has_no_runtime_warning(tmp_path):
    df = synthetic_trials(n_humans=4, n_images=22, models={"net": (10, 0.2)})
    df["correct"] = 1
    df["response"] = df["category"]
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        render_report([path], tmp_path / "r", n_boot=30)
    s = pd.read_csv(tmp_path / "r" / "alignment.csv").iloc[0]
    assert s["neg_log_mse"] == pytest.approx(NEG_LOG_MSE_CAP)
    assert s["neg_log_mse_high"] == pytest.approx(NEG_LOG_MSE_CAP)
    assert s["neg_log_mse_sd"] == 0 and bool(s["neg_log_mse_perfect"])
    # the CLI run prints no warning either
    run = _cli("--trials", path, "--out", tmp_path / "r2", "--n-boot", "30")
    assert run.returncode == 0 and "Warning" not in run.stderr, run.stderr


# item 7: the report folder is replaced whole or not at all ----------------------------

def test_failed_rerun_leaves_the_earlier_report_byte_identical(tmp_path, monkeypatch):
    t = _small(tmp_path)
    out = tmp_path / "r"
    render_report([t], out, n_boot=20)
    before = _snapshot(out)
    assert (out / MARK).is_file() and Path("index.html") in before
    # a rerun on model rows only fails (nothing to compare the model with)
    models_only = tmp_path / "models.csv"
    df = pd.read_csv(t)
    df[df["observer_type"] == "model"].to_csv(models_only, index=False)
    run = _cli("--trials", models_only, "--out", out, "--overwrite", "--n-boot", "20")
    assert run.returncode == 2 and run.stderr.startswith("error: "), run.stderr
    assert _snapshot(out) == before
    # a failure half-way through writing (after curves.csv and fits.csv) changes nothing
    from analysis import figures_detail

    def broken(*_a, **_k):
        raise RuntimeError("injected")

    monkeypatch.setattr(figures_detail, "threshold_figure", broken)
    with pytest.raises(RuntimeError, match="injected"):
        render_report([t], out, n_boot=20, seed=9, overwrite=True)
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["models.csv", "r", "t.csv"]


def test_failure_into_a_new_folder_leaves_nothing(tmp_path, monkeypatch):
    from analysis import figures_detail

    t = _small(tmp_path)
    monkeypatch.setattr(figures_detail, "threshold_figure", lambda *a, **k: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        render_report([t], tmp_path / "new" / "r", n_boot=20)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


def test_rerun_needs_overwrite_and_replaces_the_report(tmp_path):
    t = _small(tmp_path)
    out = tmp_path / "r"
    render_report([t], out, n_boot=20)
    (out / "stale.png").write_bytes(b"old")
    with pytest.raises(InputError, match="--overwrite"):
        render_report([t], out, n_boot=20)
    render_report([t], out, n_boot=20, overwrite=True)
    assert not (out / "stale.png").exists() and (out / "index.html").is_file()


# item 16: bad output paths, before any work --------------------------------------------

def test_bad_out_paths_are_one_error_line(tmp_path, capsys):
    t = _small(tmp_path)
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    locked = tmp_path / "locked"
    locked.mkdir()
    cases = {a_file: "not a folder", a_file / "r": "is a file, not a folder",
             other: "not empty", t: "not a folder"}
    for out, message in cases.items():
        run = _cli("--trials", t, "--out", out, "--n-boot", "20")
        assert run.returncode == 2, (out, run.stderr)
        lines = run.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    # an unwritable parent, in this process so that root is refused too (tests/support)
    with unwritable(locked):
        code = dispatch("python -m analysis", COMMANDS,
                        ["report", "--trials", str(t), "--out", str(locked / "r"),
                         "--n-boot", "20"])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: ")
    assert "permission denied" in lines[0] and str(locked / "r") in lines[0]
    assert a_file.read_text() == "x" and not (locked / "r").exists()
    assert [p.name for p in other.iterdir()] == ["notes.txt"]


def test_out_holding_the_trials_is_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    t = _small(data)
    (data / MARK).write_text("{}")
    with pytest.raises(InputError, match="holds the input"):
        render_report([t], data, n_boot=20, overwrite=True)
    assert t.is_file()


# item 21: exclusions said plainly at the top -------------------------------------------

def _pilot(n=8, bad=5):
    """A small pilot: 8 simulated people, 2 full-image trials each; 5 miss one of them."""
    df = synthetic_trials(n_humans=n, n_images=22, observer_type="simulated",
                          models={"net": (10, 0.2)})
    full = []
    for h in range(n):
        for k in range(2):
            full.append({"observer_id": f"synthetic-{h:02d}", "observer_type": "simulated",
                         "runner": "simulation", "image_id": f"full_{k}",
                         "stimulus_id": f"full_{k}_full", "category": "animal",
                         "response": "animal", "correct": int(not (h < bad and k == 0)),
                         "timeout": 0, "practice": 0, "rt_ms": 450.0, "trial": 100 + k})
    return pd.concat([df, pd.DataFrame(full)], ignore_index=True)


def test_exclusions_are_said_at_the_top_and_on_the_console(tmp_path):
    path = tmp_path / "pilot.csv"
    _pilot().to_csv(path, index=False)
    run = _cli("--trials", path, "--out", tmp_path / "r", "--n-boot", "20")
    assert run.returncode == 0, run.stderr
    first = run.stdout.splitlines()[0]
    assert first.startswith("5 of 8 participants EXCLUDED")
    assert "5 for low accuracy on the easiest condition" in first
    assert "median of 2 answered trial(s)" in first and "single error" in first
    html = (tmp_path / "r" / "index.html").read_text(encoding="utf-8")
    headline = html.index("5 of 8 participants EXCLUDED")
    assert headline < html.index("<h2")       # above every section
    excl = pd.read_csv(tmp_path / "r" / "exclusions.csv")
    assert excl.loc[excl["observer_type"] == "simulated", "n_top_trials"].eq(2).all()


def test_no_exclusions_is_said_too(tmp_path):
    t = write_synthetic(tmp_path / "t.csv", n_humans=4, n_images=110)
    lines = []
    render_report([t], tmp_path / "r", n_boot=20, say=lines.append)
    assert lines == ["No participants excluded: all 4 passed the exclusion rules."]


def test_a_report_of_sparse_people_only_prints_no_warning(tmp_path):
    # 3 people with 2 trials per level: none drawn, so the panel has no legend entries
    t = write_synthetic(tmp_path / "t.csv", n_humans=3, n_images=22)
    run = _cli("--trials", t, "--out", tmp_path / "r", "--n-boot", "20")
    assert run.returncode == 0 and run.stderr == "", run.stderr
