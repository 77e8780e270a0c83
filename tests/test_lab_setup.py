"""What a lab sets up for run-lab, without a window: the screen's calibration (a Monitor Center
file in a temporary monitors folder, or the two cm options), the stimulus size and the upscale
rule, the background colour, the lab's own instructions, repeated practice and the
experimenter's summary (PsychoPy's screen replaced by a stand-in; the real window, drawing the
image at the expected pixel size, is tested in test_lab_runner.py)."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from experiment import lab
from experiment.lab_screen import aligned_centre, scaled_image
from experiment.lab_setup import (
    Calibration,
    calibration_from_args,
    colour,
    html_to_text,
    instructions_screen,
    load_monitor,
    markdown_to_text,
    practice_plan,
    read_instructions,
    stimulus_sizes,
    text_colour,
)
from experiment.lists import ListConfig, write_lists
from experiment.schema import (
    LAB_TRIAL_COLUMNS,
    TRIAL_COLUMNS,
    TRIAL_LIST_COLUMNS,
    read_rows,
    write_table,
)
from suite.errors import InputError
from tests.support.stimulus_sets import make_stimulus_set

MAPPING = {"animal": "f", "non-animal": "j"}


@pytest.fixture
def monitors_folder(tmp_path, monkeypatch):
    """PsychoPy's Monitor Center folder pointed at a temporary one (calibTools.monitorFolder)."""
    from psychopy.monitors import calibTools

    folder = tmp_path / "monitors"
    folder.mkdir()
    monkeypatch.setattr(calibTools, "monitorFolder", str(folder))
    return folder


def _save_monitor(name, width=53.0, distance=57.0, size=(1920, 1080)):
    from psychopy import monitors

    mon = monitors.Monitor(name, width=width, distance=distance, verbose=False, autoLog=False)
    if size:
        mon.setSizePix(list(size))
    mon.setCalibDate(1767225600.0)  # 2026-01-01T00:00:00Z
    mon.save()


# -- calibration -----------------------------------------------------------------------------

def test_a_saved_monitor_center_calibration_is_read(monitors_folder):
    _save_monitor("lab-dell")
    assert (monitors_folder / "lab-dell.json").is_file()
    cal = load_monitor("lab-dell")
    assert (cal.source, cal.monitor, cal.width_cm, cal.distance_cm, cal.size_px) == \
        ("monitor", "lab-dell", 53.0, 57.0, (1920, 1080))
    assert cal.calibration_date == "2026-01-01T00:00:00+00:00" and cal.calibration


def test_an_unknown_monitor_names_the_folder_and_the_saved_ones(monitors_folder):
    _save_monitor("lab-dell")
    with pytest.raises(InputError, match=r"--monitor nope: no such Monitor Center calibration in "
                                         rf"{monitors_folder} \(saved: lab-dell\)"):
        load_monitor("nope")


def test_a_monitor_without_a_distance_is_refused(monitors_folder):
    _save_monitor("no-distance", distance=None)
    with pytest.raises(InputError, match="has no viewing distance"):
        load_monitor("no-distance")


def test_the_cm_options_come_as_a_pair_and_not_with_a_monitor():
    assert calibration_from_args(None, 53, 57) == Calibration("options", 53.0, 57.0)
    assert calibration_from_args(None, None, None) is None
    with pytest.raises(InputError, match="--distance-cm is missing"):
        calibration_from_args(None, 53, None)
    with pytest.raises(InputError, match="both given"):
        calibration_from_args("lab-dell", None, 57)


# -- stimulus size and the upscale rule ------------------------------------------------------

def test_eight_degrees_needing_more_than_256_px_is_refused_without_the_flag():
    cal = Calibration("options", 53.0, 57.0)
    with pytest.raises(InputError, match=r"needs 289 px on this screen but the images are 256 px"
                                         r".*--allow-upscale.*at most 7\.09°"):
        stimulus_sizes(cal, (1920, 1080), (1920, 1080), {256}, 8.0, allow_upscale=False)
    size = stimulus_sizes(cal, (1920, 1080), (1920, 1080), {256}, 8.0, allow_upscale=True)[256]
    assert size.drawn_px == 289 and size.upscaled and size.stimulus_deg == pytest.approx(8.00595,
                                                                                         abs=1e-5)


def test_native_size_records_the_angle_and_smaller_angles_downscale():
    cal = Calibration("options", 53.0, 57.0)
    native = stimulus_sizes(cal, (1920, 1080), (1920, 1080), {256}, None, False)[256]
    assert native.drawn_px == 256 and native.stimulus_deg == pytest.approx(7.09426, abs=1e-5)
    six = stimulus_sizes(cal, (1920, 1080), (1920, 1080), {256}, 6.0, False)[256]
    assert six.drawn_px == 216 and not six.upscaled
    assert stimulus_sizes(None, (1920, 1080), (1920, 1080), {256}, None, False)[256].stimulus_deg \
        is None


def test_a_calibration_for_another_resolution_or_a_too_small_window_is_refused():
    cal = Calibration("monitor", 53.0, 57.0, "lab-dell", "c1", None, (2560, 1440))
    with pytest.raises(InputError, match="calibrated for 2560x1440 px but the screen is 1920x1080"):
        stimulus_sizes(cal, (1920, 1080), (1920, 1080), {256}, 6.0, False)
    with pytest.raises(InputError, match="does not fit the 400x300 px window"):
        stimulus_sizes(Calibration("options", 53.0, 57.0), (1920, 1080), (400, 300), {256}, 20.0,
                       True)


def test_images_are_resized_once_with_lanczos_and_placed_on_whole_pixels(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "im.png"
    Image.fromarray(rng.integers(0, 256, (256, 256, 3), dtype="uint8")).save(path)
    scaled = scaled_image(str(path), 289)
    assert scaled.size == (289, 289)
    with Image.open(path) as original:
        assert list(scaled.getdata()) == list(original.convert("RGB").resize(
            (289, 289), Image.Resampling.LANCZOS).getdata())
    assert scaled_image(str(path), None).size == (256, 256)
    for window, image in (((1024, 768), (289, 289)), ((1025, 767), (256, 256)),
                          ((1920, 1080), (253, 253))):
        cx, cy = aligned_centre(window, image)
        left, bottom = window[0] / 2 + cx - image[0] / 2, window[1] / 2 + cy - image[1] / 2
        assert left == int(left) and bottom == int(bottom)  # every edge on a pixel boundary


# -- colours and the lab's words --------------------------------------------------------------

def test_background_colours_by_name_or_hex_and_readable_text():
    assert colour("white") == (255, 255, 255) and colour("grey") == (128, 128, 128)
    assert colour("#808080") == (128, 128, 128)
    with pytest.raises(argparse.ArgumentTypeError, match="colour name"):
        colour("mid grey")
    assert text_colour((255, 255, 255)) == (0, 0, 0) and text_colour((128, 128, 128)) == (0, 0, 0)
    assert text_colour((40, 40, 40)) == (255, 255, 255)


def test_html_instructions_lose_scripts_styles_and_tags():
    text = html_to_text("<html><head><title>T</title><style>p{color:red}</style></head><body>"
                        "<h1>Welcome</h1><p>Look at the <b>centre</b>.<br>Answer fast.</p>"
                        "<script>alert('x')</script><ul><li>one</li><li>two &amp; three</li></ul>"
                        "<img src=x onerror=alert(1)></body></html>")
    assert text == "Welcome\n\nLook at the centre.\nAnswer fast.\n\n• one\n• two & three"


def test_markdown_instructions_become_plain_text():
    text = markdown_to_text("# Welcome\n\nLook at the **centre** of the\nscreen, *please*.\n\n"
                            "- press `F` for [animal](http://x)\n- press J otherwise\n\n"
                            "<script>alert(1)</script>Thanks")
    assert text == ("Welcome\n\nLook at the centre of the screen, please.\n\n"
                    "• press F for animal\n• press J otherwise\n\nThanks")


def test_instructions_file_keys_and_sha256(tmp_path):
    md = tmp_path / "words.md"
    md.write_text("Animal: **{animal_key}**, other: {non_animal_key}.", encoding="utf-8")
    own = read_instructions(md)
    assert own.sha256 == hashlib.sha256(md.read_bytes()).hexdigest()
    assert own.record()["format"] == "markdown"
    assert instructions_screen(own, "", MAPPING, "start") == \
        "Animal: F, other: J.\n\nPress space to start."
    plain = tmp_path / "plain.txt"
    plain.write_text("Be quick.")
    assert instructions_screen(read_instructions(plain), "", MAPPING, "continue") == \
        "Be quick.\n\nPress F for ANIMAL and J for NON-ANIMAL.\n\nPress space to continue."


@pytest.mark.parametrize("name,content,message", [
    ("w.docx", "x", "use a .md, .html or .txt file"),
    ("w.html", "<script>only()</script>", "no text to show"),
    ("w.txt", "x" * 3001, "at most 3000 fit"),
])
def test_bad_instruction_files_are_refused(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        read_instructions(path)


# -- practice rounds -------------------------------------------------------------------------

def _prac(n=4):
    return [{"practice": "1", "trial": str(i)} for i in range(1, n + 1)]


def _done(rnd, correct):
    return [{"practice": "1", "trial": str(i + 1), "practice_round": str(rnd), "correct": str(c)}
            for i, c in enumerate(correct)]


def test_practice_plan_repeats_below_the_criterion_up_to_the_maximum():
    rows = _prac()
    assert practice_plan(rows, [], False, 0.8, 3)[:2] == (1, rows)
    assert practice_plan(rows, _done(1, [1, 0, 1, 0]), False, 0.8, 3)[:2] == (2, rows)
    assert practice_plan(rows, _done(1, [1, 1, 1, 1]), False, 0.8, 3)[:2] == (0, [])
    assert practice_plan(rows, _done(1, [0] * 4) + _done(2, [0] * 4), False, 0.8, 2)[:2] == (0, [])
    assert practice_plan(rows, _done(1, [0] * 4), False, None, 3)[:2] == (0, [])  # no criterion
    assert practice_plan(rows, _done(1, [0] * 4), True, 0.8, 3)[:2] == (0, [])  # test begun
    # a round cut short is finished first: round 2 has trials 1-2 done
    rnd, left, rounds = practice_plan(rows, _done(1, [0] * 4) + _done(2, [1, 1]), False, 0.8, 3)
    assert (rnd, [r["trial"] for r in left]) == (2, ["3", "4"])
    assert rounds == [{"round": 1, "trials": 4, "accuracy": 0.0}]


# -- a whole session with a stand-in screen --------------------------------------------------

@pytest.fixture(scope="module")
def lists(tmp_path_factory):
    """Lists of 256 px images: 2 practice + 4 test trials each."""
    base = tmp_path_factory.mktemp("labsetup")
    stim = make_stimulus_set(base / "set", 2, 2, 2, size=256)
    prac = make_stimulus_set(base / "practice", 2, 2, 2, size=256, prefix="prac")
    return write_lists(stim, base / "lists", ListConfig(seed=1, blocks=2, n_practice=2), prac)


class _Win:
    size = (1920, 1080)

    def __init__(self):
        self.frameIntervals = [1 / 60] * 10
        self.recordFrameIntervals = False


class Screen:
    """Stands in for LabScreen: records what it was built with and the texts it showed."""

    made: list = []
    texts: list = []

    def __init__(self, *args, **kwargs):
        Screen.made.append(kwargs)
        self.win, self.keyboard_backend, self.stimulus_px = _Win(), "ptb", None

    def measure_refresh(self):
        return {"hz": 60.0, "interval_sd_ms": 0.1, "interval_min_ms": 16.6,
                "interval_max_ms": 16.8, "n_frames": 120}

    def message(self, text, keys, auto_s):
        Screen.texts.append(text)

    def close(self):
        pass


@pytest.fixture
def session_env(monkeypatch):
    """run-lab with the stand-in screen; trials answered by ``answers`` (practice wrong first)."""
    state = {"practice_answers": [], "drawn_px": []}

    def trial(screen, image, category, practice, mapping, timing, hz, fixation, on_onset=None):
        state["drawn_px"].append(screen.stimulus_px)
        ok = state["practice_answers"].pop(0) if practice and state["practice_answers"] else 1
        response = category if ok else ("animal" if category == "non-animal" else "non-animal")
        return {"response": response, "correct": ok, "timeout": 0, "rt_ms": 400.0,
                "fixation_ms": 1200.0, "frames_intended": 24, "frames_shown": 24,
                "dropped_frames": 0}

    monkeypatch.setattr(lab, "LabScreen", Screen)
    monkeypatch.setattr(lab, "check_display", lambda screen: 1)
    monkeypatch.setattr(lab, "screen_pixels", lambda screen: (1920, 1080))
    monkeypatch.setattr(lab, "screen_info", lambda screen, fullscr: {"size": [1920, 1080]})
    monkeypatch.setattr(lab, "run_trial", trial)
    Screen.made, Screen.texts = [], []
    return state


def _run(list_csv: Path, out: Path, *extra: str) -> int:
    parser = argparse.ArgumentParser(prog="run-lab")
    lab.add_arguments(parser)
    return lab.main(parser.parse_args(["--list", str(list_csv), "--participant", "1", "--out",
                                       str(out), "--refresh-hz", "60", *extra]))


def test_stimulus_deg_and_the_calibration_go_into_every_row_and_the_session_json(
        lists, tmp_path, session_env, capsys):
    assert _run(lists[0], tmp_path, "--screen-width-cm", "53", "--distance-cm", "57",
                "--stimulus-deg", "6", "--background", "#808080") == 0
    rows = read_rows(tmp_path / "sub-1.csv", required=LAB_TRIAL_COLUMNS)
    # 216 px: 2·atan((216 / 36.2264) / 114) = 5.98801°
    assert {r["stimulus_deg"] for r in rows} == {"5.988"}
    assert session_env["drawn_px"] == [216] * 6
    assert Screen.made[0]["background"] == (128, 128, 128)
    run = json.loads((tmp_path / "sub-1.json").read_text())["runs"][-1]
    size = run["stimulus_size"]
    assert size["calibration"]["source"] == "options" and size["screen_px"] == [1920, 1080]
    assert size["sizes"][0]["drawn_px"] == 216 and size["sizes"][0]["requested_deg"] == 6.0
    assert size["sizes"][0]["px_per_deg"] == pytest.approx(216 / 5.98801, abs=1e-3)
    assert "LANCZOS" in size["filter"] and run["background_rgb255"] == [128, 128, 128]
    summary = run["summary"]
    assert (summary["trials"], summary["practice_trials"], summary["accuracy"],
            summary["timeouts"]) == (4, 2, 1.0, 0)
    assert summary["stimulus_deg"] == [5.988] and summary["verdict"] == "OK"
    out = capsys.readouterr().out
    assert "summary: 4 test trial(s), accuracy 100.0 %" in out and "summary: timing OK" in out


def test_without_a_calibration_the_angle_is_empty_and_said_to_be_unknown(lists, tmp_path,
                                                                         session_env, capsys):
    assert _run(lists[0], tmp_path) == 0
    rows = read_rows(tmp_path / "sub-1.csv", required=LAB_TRIAL_COLUMNS)
    assert {r["stimulus_deg"] for r in rows} == {""} and session_env["drawn_px"] == [None] * 6
    captured = capsys.readouterr()
    assert "angle is not known" in captured.err and "angle unknown" in captured.out


def test_stimulus_deg_without_a_calibration_is_refused_before_a_window(lists, tmp_path,
                                                                      session_env):
    with pytest.raises(InputError, match="--stimulus-deg needs the screen's calibration"):
        _run(lists[0], tmp_path / "out", "--stimulus-deg", "8")
    assert not (tmp_path / "out").exists() and Screen.made == []


def test_upscaling_is_refused_before_a_window_unless_allowed(lists, tmp_path, session_env):
    with pytest.raises(InputError, match="--allow-upscale"):
        _run(lists[0], tmp_path / "out", "--screen-width-cm", "53", "--distance-cm", "57",
             "--stimulus-deg", "8")
    assert not (tmp_path / "out").exists() and Screen.made == []
    assert _run(lists[0], tmp_path / "ok", "--screen-width-cm", "53", "--distance-cm", "57",
                "--stimulus-deg", "8", "--allow-upscale") == 0
    assert session_env["drawn_px"] == [289] * 6


def test_a_monitor_center_calibration_is_recorded(lists, tmp_path, session_env, monitors_folder):
    _save_monitor("lab-dell")
    assert _run(lists[0], tmp_path, "--monitor", "lab-dell", "--stimulus-deg", "6") == 0
    cal = json.loads((tmp_path / "sub-1.json").read_text())["runs"][-1]["stimulus_size"][
        "calibration"]
    assert (cal["monitor"], cal["width_cm"], cal["distance_cm"], cal["calibration_date"]) == \
        ("lab-dell", 53.0, 57.0, "2026-01-01T00:00:00+00:00")


def test_the_labs_instructions_are_shown_and_their_sha256_recorded(lists, tmp_path, session_env):
    words = tmp_path / "words.html"
    words.write_text("<p>Our lab: <b>{animal_key}</b> = animal, {non_animal_key} = other.</p>"
                     "<script>steal()</script>")
    assert _run(lists[0], tmp_path / "out", "--instructions", str(words)) == 0
    assert Screen.texts[0].startswith("Our lab: F = animal, J = other.")
    assert "steal" not in Screen.texts[0]
    run = json.loads((tmp_path / "out" / "sub-1.json").read_text())["runs"][-1]
    assert run["instructions"]["sha256"] == hashlib.sha256(words.read_bytes()).hexdigest()


def test_practice_repeats_until_the_criterion_and_each_round_is_kept(lists, tmp_path,
                                                                     session_env):
    session_env["practice_answers"] = [0, 1, 0, 0]  # round 1: 50 %, round 2: 0 %, round 3: 100 %
    assert _run(lists[0], tmp_path, "--practice-criterion", "0.8") == 0
    rows = read_rows(tmp_path / "sub-1.csv", required=LAB_TRIAL_COLUMNS)
    practice = [(r["practice_round"], r["trial"]) for r in rows if r["practice"] == "1"]
    assert practice == [("1", "1"), ("1", "2"), ("2", "1"), ("2", "2"), ("3", "1"), ("3", "2")]
    assert [r["practice_round"] for r in rows if r["practice"] == "0"] == [""] * 4
    assert sum("Let's practise once more" in t for t in Screen.texts) == 2
    record = json.loads((tmp_path / "sub-1.json").read_text())
    assert [r["accuracy"] for r in record["practice"]["rounds"]] == [0.5, 0.0, 1.0]
    assert record["practice"]["met"] is True
    assert record["runs"][-1]["summary"]["practice_criterion_met"] is True


def test_practice_stops_after_the_maximum_rounds_and_says_so(lists, tmp_path, session_env, capsys):
    session_env["practice_answers"] = [0] * 4
    assert _run(lists[0], tmp_path, "--practice-criterion", "0.8", "--practice-max-rounds",
                "2") == 0
    rows = read_rows(tmp_path / "sub-1.csv", required=LAB_TRIAL_COLUMNS)
    assert len(rows) == 2 * 2 + 4
    record = json.loads((tmp_path / "sub-1.json").read_text())
    assert record["practice"]["met"] is False
    assert "criterion 80 % not reached after 2 round(s)" in capsys.readouterr().out


def test_practice_options_are_checked_when_parsed(capsys):
    parser = argparse.ArgumentParser(prog="run-lab")
    lab.add_arguments(parser)
    for argv in (["--practice-criterion", "1.5"], ["--practice-max-rounds", "0"],
                 ["--stimulus-deg", "0"], ["--distance-cm", "2"], ["--background", "nocolour"]):
        with pytest.raises(SystemExit):
            parser.parse_args(["--list", "L", "--participant", "1", *argv])
        assert argv[0] in capsys.readouterr().err


def test_a_session_begun_before_the_lab_columns_resumes_with_its_own_header(lists, tmp_path,
                                                                           session_env):
    assert _run(lists[0], tmp_path) == 0
    csv_path = tmp_path / "sub-1.csv"
    old = [{c: r[c] for c in TRIAL_COLUMNS} for r in read_rows(csv_path, TRIAL_COLUMNS)[:3]]
    write_table(csv_path, old, TRIAL_COLUMNS)  # as an older runner wrote it, 3 trials done
    assert _run(lists[0], tmp_path) == 0
    assert csv_path.read_text().splitlines()[0] == ",".join(TRIAL_COLUMNS)
    assert len(read_rows(csv_path, required=TRIAL_COLUMNS)) == len(
        read_rows(lists[0], required=TRIAL_LIST_COLUMNS))
