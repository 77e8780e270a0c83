"""The shared output checks (suite.outputs) and argument types (suite.cli_types), unit by unit."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest

from suite.cli_types import float_in, int_at_least, int_in, list_item
from suite.errors import InputError
from suite.outputs import (
    MARK,
    building_folder,
    check_output_file,
    check_output_folder,
    is_suite_folder,
    mark_folder,
    remove_suite_folder,
)
from tests.support.permissions import unwritable


def _tree(folder: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


@pytest.fixture
def files(tmp_path):
    (tmp_path / "input.csv").write_text("a,b\n1,2\n")
    (tmp_path / "afile").write_text("x")
    return tmp_path


# ---- check_output_file -----------------------------------------------------------------------

def test_file_output_may_be_new_even_in_new_folders(files):
    out = files / "new" / "deeper" / "out.csv"
    assert check_output_file(out, inputs=[files / "input.csv"]) == out
    assert not (files / "new").exists()  # checking creates nothing


def test_file_output_that_is_a_folder_is_refused(files):
    with pytest.raises(InputError, match=r"is a folder; --out takes a file name") as err:
        check_output_file(files)
    assert str(err.value).startswith(str(files))


def test_file_output_under_a_file_is_refused(files):
    with pytest.raises(InputError, match=r"afile is a file, not a folder; choose another --report"):
        check_output_file(files / "afile" / "sub" / "out.csv", option="--report")


def test_file_output_in_an_unwritable_folder_is_refused(files):
    locked = files / "locked"
    locked.mkdir()
    with unwritable(locked):
        with pytest.raises(InputError, match=r"cannot write in .*locked \(permission denied\)"):
            check_output_file(locked / "out.csv")
        with pytest.raises(InputError, match="permission denied"):
            check_output_file(locked / "new" / "out.csv")  # the nearest existing folder counts


def test_existing_unwritable_file_is_refused(files):
    with unwritable(files / "afile"), \
            pytest.raises(InputError, match=r"afile: exists and is not writable"):
        check_output_file(files / "afile")


def test_file_output_equal_to_an_input_is_refused_by_every_spelling(files, monkeypatch):
    inp = files / "input.csv"
    (files / "link.csv").symlink_to(inp)
    os.link(inp, files / "hard.csv")
    (files / "sub").mkdir()
    monkeypatch.chdir(files / "sub")
    for out in (inp, files / "link.csv", files / "hard.csv", Path("../input.csv"),
                Path("../sub/../input.csv")):
        with pytest.raises(InputError, match="is also an input") as err:
            check_output_file(out, inputs=[inp])
        assert str(out) in str(err.value) and "input.csv" in str(err.value)
    assert inp.read_text() == "a,b\n1,2\n"
    assert check_output_file(files / "other.csv", inputs=[inp, None]) == files / "other.csv"


# ---- check_output_folder ---------------------------------------------------------------------

def test_folder_output_new_or_empty_is_accepted_without_overwrite(files):
    assert check_output_folder(files / "new" / "set") == files / "new" / "set"
    (files / "empty").mkdir()
    assert check_output_folder(files / "empty") == files / "empty"
    assert not (files / "new").exists()


def test_folder_output_that_is_a_file_is_refused(files):
    with pytest.raises(InputError,
                       match=r"afile: exists and is not a folder; choose another --out"):
        check_output_folder(files / "afile", overwrite=True)


def test_folder_output_under_a_file_is_refused(files):
    with pytest.raises(InputError, match="is a file, not a folder"):
        check_output_folder(files / "afile" / "set")


def test_folder_output_in_an_unwritable_folder_is_refused(files):
    locked = files / "locked"
    locked.mkdir()
    with unwritable(locked), pytest.raises(InputError, match="permission denied"):
        check_output_folder(locked / "set")


def test_folder_output_holding_or_being_an_input_is_refused(files):
    with pytest.raises(InputError, match="holds the input"):
        check_output_folder(files, inputs=[files / "input.csv"], overwrite=True)
    (files / "alias").symlink_to(files, target_is_directory=True)
    with pytest.raises(InputError, match="is also an input"):
        check_output_folder(files / "alias", inputs=[files], overwrite=True)


def test_non_empty_folder_needs_overwrite(files):
    with pytest.raises(InputError, match="output folder is not empty; choose a new folder or pass "
                                         "--overwrite"):
        check_output_folder(files)


def test_overwrite_is_refused_for_a_folder_the_suite_did_not_make(files):
    with pytest.raises(InputError, match=f"not made by this suite \\(no {MARK} file\\)"):
        check_output_folder(files, overwrite=True)
    assert _tree(files)["afile"] == b"x"


def test_overwrite_is_allowed_for_a_marked_folder_unless_it_is_unwritable(files):
    mark_folder(files, "test")
    assert is_suite_folder(files)
    assert check_output_folder(files, overwrite=True) == files
    with unwritable(files), pytest.raises(InputError, match="not writable"):
        check_output_folder(files, overwrite=True)


# ---- building_folder -------------------------------------------------------------------------

def test_building_folder_marks_and_swaps_in_on_success(tmp_path):
    out = tmp_path / "a" / "b" / "set"
    with building_folder(out, "unit test") as tmp:
        assert tmp.parent == out.parent and tmp.name.startswith(".set.building-")
        (tmp / "result.txt").write_text("new")
        assert not out.exists()
    assert (out / "result.txt").read_text() == "new"
    assert json.loads((out / MARK).read_text())["made_by"] == "unit test"
    assert sorted(p.name for p in out.parent.iterdir()) == ["set"]


def test_building_folder_replaces_an_earlier_output_only_at_the_end(tmp_path):
    out = tmp_path / "set"
    with building_folder(out, "first") as tmp:
        (tmp / "old.txt").write_text("old")
    with building_folder(out, "second") as tmp:
        (tmp / "new.txt").write_text("new")
        assert (out / "old.txt").read_text() == "old"
    assert sorted(p.name for p in out.iterdir()) == [MARK, "new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_building_folder_failure_keeps_the_old_output_and_leaves_nothing(tmp_path, error):
    out = tmp_path / "set"
    with building_folder(out, "first") as tmp:
        (tmp / "good.txt").write_text("good")
    before = _tree(out)
    with pytest.raises(type(error)):
        with building_folder(out, "second") as tmp:
            (tmp / "half.txt").write_text("half")
            raise error
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]


def test_building_folder_failure_removes_the_parents_it_created(tmp_path):
    with pytest.raises(RuntimeError):
        with building_folder(tmp_path / "new" / "deeper" / "set", "test") as tmp:
            (tmp / "x").write_text("x")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_a_failed_final_rename_puts_the_old_output_back(tmp_path, monkeypatch):
    out = tmp_path / "set"
    with building_folder(out, "first") as tmp:
        (tmp / "good.txt").write_text("good")
    before = _tree(out)
    real_rename = Path.rename

    def rename(self, target):
        if self.name.startswith(".set.building-"):
            raise OSError(28, "No space left on device")
        return real_rename(self, target)
    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(OSError, match="No space"):
        with building_folder(out, "second") as tmp:
            (tmp / "new.txt").write_text("new")
    assert _tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_building_folder_permissions_follow_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        with building_folder(tmp_path / "set", "test"):
            pass
    finally:
        os.umask(old)
    assert (tmp_path / "set").stat().st_mode & 0o777 == 0o777 & ~umask


# ---- remove_suite_folder ---------------------------------------------------------------------

def test_remove_suite_folder_deletes_only_marked_or_empty_folders(tmp_path):
    marked, empty, theirs = tmp_path / "marked", tmp_path / "empty", tmp_path / "theirs"
    for folder in (marked, empty, theirs):
        folder.mkdir()
    mark_folder(marked, "test")
    (marked / "data").write_text("x")
    (theirs / "data").write_text("precious")
    remove_suite_folder(marked)
    remove_suite_folder(empty)
    remove_suite_folder(tmp_path / "absent")  # nothing to do
    assert not marked.exists() and not empty.exists()
    with pytest.raises(InputError, match="theirs: not made by this suite"):
        remove_suite_folder(theirs)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InputError, match="refusing to delete"):
        remove_suite_folder(tmp_path / "afile")
    assert (theirs / "data").read_text() == "precious" and (tmp_path / "afile").is_file()


# ---- cli_types -------------------------------------------------------------------------------

def _bad(parse, text: str, match: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=match):
        parse(text)


def test_int_at_least():
    parse = int_at_least(1)
    assert parse("1") == 1 and parse("40") == 40
    _bad(parse, "0", r"0 is too small \(must be ≥ 1\)")
    _bad(parse, "-5", "too small")
    _bad(parse, "2.5", "'2.5' is not a whole number")
    _bad(parse, "many", "not a whole number")


def test_int_in():
    parse = int_in(0, 9)
    assert [parse("0"), parse("9")] == [0, 9]
    _bad(parse, "10", r"10 is too large \(must be ≤ 9\)")
    _bad(parse, "-1", "too small")


def test_float_in_closed_and_open_ends():
    closed = float_in(0, 1)
    assert [closed("0"), closed("1"), closed("0.25")] == [0.0, 1.0, 0.25]
    _bad(closed, "1.01", r"out of range \(must be in \[0, 1\]\)")
    open_both = float_in(0, 1, low_open=True, high_open=True)
    _bad(open_both, "0", r"must be in \(0, 1\)")
    _bad(open_both, "1", r"must be in \(0, 1\)")
    assert open_both("0.5") == 0.5
    for text in ("nan", "inf", "-inf"):
        _bad(closed, text, "not a finite number")
    _bad(closed, "half", "'half' is not a number")


def test_list_item_refuses_a_comma_with_the_space_hint():
    parse = list_item(int_at_least(2))
    assert parse("4") == 4
    _bad(parse, "4,8", r"'4,8': give several values separated by spaces, not commas \(4 8\)")
    _bad(parse, "1", "1 is too small")
    assert list_item()("resnet50") == "resnet50"
    parser = argparse.ArgumentParser(prog="p")
    parser.add_argument("--n", type=list_item(int_at_least(2)), nargs="+")
    assert parser.parse_args(["--n", "4", "8"]).n == [4, 8]


def test_types_give_one_argparse_error_line_naming_the_option(capsys):
    parser = argparse.ArgumentParser(prog="p")
    parser.add_argument("--workers", type=int_at_least(1))
    parser.add_argument("--alpha", type=float_in(0, 1, low_open=True, high_open=True))
    assert parser.parse_args(["--workers", "2", "--alpha", "0.05"]) == argparse.Namespace(
        workers=2, alpha=0.05)
    with pytest.raises(SystemExit) as stop:
        parser.parse_args(["--workers", "0"])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == "p: error: argument --workers: 0 is too small (must be ≥ 1)"
