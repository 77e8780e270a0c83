"""Loading trial tables: the model-vs-human importer on every shared file, suite tables."""


import numpy as np
import pytest

from analysis.load import load_trials, read_model_vs_human, read_suite_table
from experiment.schema import TRIAL_COLUMNS
from suite.errors import InputError
from tests.support.data import MVH_RAW, files_under
from tests.support.synthetic_trials import synthetic_trials

MVH_FILES = files_under(MVH_RAW, "*.csv")


def _raw_records(path):
    """Data rows counted from the raw file lines: non-empty lines after the header."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.split(",") for line in lines[1:] if line.strip()]


def test_every_shared_file_is_present(mvh_raw):
    assert len(MVH_FILES) == 16


@pytest.mark.parametrize("path", MVH_FILES, ids=lambda p: p.name)
def test_importer_reads_every_row_with_the_right_answers(path, mvh_raw):
    raw = _raw_records(path)
    df = read_model_vs_human(path)
    assert len(df) == len(raw)
    assert set(TRIAL_COLUMNS) <= set(df.columns)
    # correct is recomputed here from the raw cells: response equals category
    expected = np.array([r[4] == r[5] for r in raw], dtype=int)
    assert np.array_equal(df["correct"].to_numpy(), expected)
    assert df["guess"].eq(1 / 16).all()
    assert df["timeout"].sum() == sum(r[4] == "na" for r in raw)
    assert df["level"].nunique() == len({r[6] for r in raw})
    assert df["dataset"].iloc[0] == path.parent.name


def test_load_trials_reads_a_folder_of_all_experiments(mvh_raw):
    df = load_trials([mvh_raw])
    assert len(df) == sum(len(_raw_records(p)) for p in MVH_FILES)
    assert set(df["dataset"]) == {"contrast", "low-pass", "uniform-noise", "phase-scrambling"}
    assert df.loc[df["dataset"] == "contrast", "level"].min() == 1.0


def test_suite_table_round_trips_with_types(tmp_path):
    src = synthetic_trials(n_humans=3, n_images=22, models={"net": (10, 0.2)})
    path = tmp_path / "trials.csv"
    src.to_csv(path, index=False)
    df = read_suite_table(path)
    assert len(df) == len(src)
    assert df["level_percent"].dtype.kind == "f"
    assert df.loc[df["observer_type"] == "model", "observer_id"].eq("net").all()
    assert df["guess"].eq(0.5).all() and df["level"].equals(df["level_percent"])


def test_bad_cells_raise_input_error_naming_file(tmp_path):
    src = synthetic_trials(n_humans=1, n_images=11)
    src["rt_ms"] = src["rt_ms"].astype(object)
    src.loc[3, "rt_ms"] = "fast"
    path = tmp_path / "bad.csv"
    src.to_csv(path, index=False)
    with pytest.raises(InputError, match=r"bad\.csv.*rt_ms"):
        load_trials([path])


def test_missing_columns_raise_input_error(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(InputError, match="missing trial-table column"):
        load_trials([path])
