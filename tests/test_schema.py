"""The shared trial table: exact columns, durable appends, clear errors."""

import csv
import os
import subprocess
import sys

import pandas as pd
import pytest

from experiment.schema import (
    TRIAL_COLUMNS,
    TRIAL_LIST_COLUMNS,
    SchemaError,
    TrialWriter,
    format_row,
    read_rows,
    write_table,
)
from stimuli.schema import STIMULUS_MANIFEST_COLUMNS
from suite.errors import InputError
from suite.tables import TableError


def _row(i, **kw):
    row = {"observer_id": "p1", "observer_type": "human", "runner": "lab", "trial": i,
           "response": "animal", "correct": 1, "timeout": 0, "rt_ms": 412.5}
    row.update(kw)
    return row


def test_columns_are_the_spec_columns_in_order():
    assert TRIAL_COLUMNS[:4] == ("observer_id", "observer_type", "runner", "session_id")
    assert TRIAL_COLUMNS[-1] == "timestamp_utc" and len(TRIAL_COLUMNS) == 26
    assert TRIAL_LIST_COLUMNS == ("list_id", "block", "trial", "practice", "stimulus_id", "file",
                                  "image_id", "category", "level_index", "level_percent")
    assert len(STIMULUS_MANIFEST_COLUMNS) == 13 and STIMULUS_MANIFEST_COLUMNS[-1] == "sha256"


def test_writer_appends_with_one_header_and_empty_cells(tmp_path):
    path = tmp_path / "s.csv"
    with TrialWriter(path) as w:
        w.write(_row(1))
    with TrialWriter(path) as w:  # reopening appends, no second header
        w.write(_row(2, correct=False, response="none", timeout=True, rt_ms=None))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == ",".join(TRIAL_COLUMNS)
    rows = read_rows(path)
    assert [r["trial"] for r in rows] == ["1", "2"]
    assert rows[1]["correct"] == "0" and rows[1]["timeout"] == "1" and rows[1]["rt_ms"] == ""
    assert rows[0]["rt_ms"] == "412.5" and rows[0]["model_name"] == ""


def test_writer_rejects_values_outside_the_vocabulary(tmp_path):
    with TrialWriter(tmp_path / "s.csv") as w:
        with pytest.raises(SchemaError, match="response"):
            w.write(_row(1, response="yes"))
        with pytest.raises(TableError, match="unknown column"):
            w.write(_row(1, reaction=3))
    assert len(read_rows(tmp_path / "s.csv")) == 0


def test_writer_refuses_a_file_with_another_header(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n", encoding="utf-8")
    with pytest.raises(InputError, match="other.csv"):
        TrialWriter(path)
    assert path.read_text(encoding="utf-8") == "a,b\n1,2\n"


def test_rows_survive_sigkill_and_a_torn_last_row_is_set_aside(tmp_path):
    path = tmp_path / "s.csv"
    code = (
        "import os, signal\n"
        "from experiment.schema import TrialWriter\n"
        f"w = TrialWriter({str(path)!r})\n"
        "for i in range(3):\n"
        "    w.write({'observer_id': 'p', 'observer_type': 'simulated', 'runner': 'simulation',"
        " 'trial': i, 'response': 'animal', 'correct': 1, 'timeout': 0})\n"
        "w._fh.write('p,simulated,simulation,,,,9')\n"  # half a row, never flushed by the writer
        "w._fh.flush()\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=os.getcwd())
    assert proc.returncode == -9
    assert [r["trial"] for r in read_rows(path)] == ["0", "1", "2"]
    with TrialWriter(path) as w:  # the torn row goes to the sidecar; the trial is written once
        assert w.set_aside == tmp_path / "s.csv.torn"
        w.write(_row(3))
    assert [r["trial"] for r in read_rows(path)] == ["0", "1", "2", "3"]
    assert (tmp_path / "s.csv.torn").read_text(encoding="utf-8") == "p,simulated,simulation,,,,9\n"
    table = pd.read_csv(path)
    assert table["trial"].tolist() == [0, 1, 2, 3]  # no all-empty row from the torn one


def test_a_torn_row_with_every_cell_is_not_counted_as_done_and_is_written_once(tmp_path):
    # A crash inside the last cell (the timestamp) leaves as many cells as the header.
    path = tmp_path / "s.csv"
    with TrialWriter(path) as w:
        for i in (1, 2, 3):
            w.write(_row(i, timestamp_utc="2026-01-01T00:00:00.000Z"))
    whole = format_row(_row(4, timestamp_utc="2026-01-01T00:00:00.000Z"))
    with open(path, "a", encoding="utf-8", newline="") as fh:
        fh.write(whole[:-8])  # cut in the timestamp, no newline
    assert [r["trial"] for r in read_rows(path, drop_unterminated=True)] == ["1", "2", "3"]
    with TrialWriter(path) as w:
        w.write(_row(4, timestamp_utc="2026-01-01T00:00:01.000Z"))
    table = pd.read_csv(path)
    assert table["trial"].tolist() == [1, 2, 3, 4]
    assert table["timestamp_utc"].iloc[-1] == "2026-01-01T00:00:01.000Z"
    assert (tmp_path / "s.csv.torn").read_text(encoding="utf-8") == whole[:-8] + "\n"


def test_a_header_cut_short_is_set_aside_and_written_whole(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text(",".join(TRIAL_COLUMNS)[:30], encoding="utf-8")
    with TrialWriter(path) as w:
        w.write(_row(1))
    assert [r["trial"] for r in read_rows(path)] == ["1"]
    assert path.read_text(encoding="utf-8").splitlines()[0] == ",".join(TRIAL_COLUMNS)


def test_a_clean_file_has_nothing_set_aside(tmp_path):
    path = tmp_path / "s.csv"
    with TrialWriter(path) as w:
        w.write(_row(1))
    with TrialWriter(path) as w:
        assert w.set_aside is None
    assert not (tmp_path / "s.csv.torn").exists()


def test_write_table_is_whole_or_nothing(tmp_path):
    path = tmp_path / "list.csv"
    write_table(path, [{"list_id": 0, "trial": 1}], TRIAL_LIST_COLUMNS)
    with pytest.raises(TableError):
        write_table(path, [{"list_id": 0, "bogus": 1}], TRIAL_LIST_COLUMNS)
    with open(path, newline="", encoding="utf-8") as fh:
        assert list(csv.reader(fh)) == [list(TRIAL_LIST_COLUMNS), ["0", "", "1"] + [""] * 7]
    assert os.listdir(tmp_path) == ["list.csv"]


def test_read_rows_names_the_file_and_the_missing_columns(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("observer_id,response\np,animal\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"bad\.csv.*missing column"):
        read_rows(path)


def test_cli_prints_one_line_for_input_errors(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "stimuli", "nonsense"], capture_output=True,
                          text=True)
    assert proc.returncode == 2 and "unknown command 'nonsense'" in proc.stderr
