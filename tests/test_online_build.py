"""build-online: the site holds only the stimuli the lists use, the lists as JSON, jsPsych from
node_modules."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from experiment.__main__ import COMMANDS
from experiment.online.build import PAGE_CONFIG, build_site, load_lists, read_page_module
from experiment.online.config import Timing
from experiment.online.validation import OPTIONAL_FIELDS, TRIAL_FIELDS
from experiment.schema import TRIAL_LIST_COLUMNS, read_rows, write_table
from suite.command_line import dispatch
from suite.errors import InputError
from suite.outputs import MARK
from tests.support.permissions import unwritable
from tests.support.sample_study import make_lists, make_stimulus_set


@pytest.fixture
def study(tmp_path) -> tuple[Path, Path]:
    manifest = make_stimulus_set(tmp_path / "set", n_images=4)
    return make_lists(manifest, tmp_path / "lists" / "lists.csv", n_lists=2,
                      stimuli_dir=tmp_path / "set"), tmp_path / "set"


def test_cli_builds_site_with_used_stimuli_only(study, tmp_path):
    lists, stimuli = study
    out = tmp_path / "site"
    rc = dispatch("python -m experiment", COMMANDS, [
        "build-online", "--lists", str(lists.parent), "--stimuli", str(stimuli), "--out", str(out),
        "--keys", "e", "i", "--completion-url", "https://app.prolific.com/submissions/complete?cc=X"])
    assert rc == 0
    rows = read_rows(lists, TRIAL_LIST_COLUMNS)
    copied = sorted(p.relative_to(out / "public" / "stimuli").as_posix()
                    for p in (out / "public" / "stimuli").rglob("*.png"))
    # list files are relative to the list's folder; the site keeps their place in the set
    assert copied == sorted({os.path.relpath((lists.parent / r["file"]).resolve(),
                                             stimuli.resolve()) for r in rows})
    assert len(copied) < len(list((stimuli / "images").glob("*.png")))
    study_json = json.loads((out / "study.json").read_text())
    assert study_json["keys"] == {"animal": "e", "non-animal": "i"}
    assert study_json["lists"] == ["L0", "L1"]
    assert study_json["timing"]["stimulus_s"] == 0.4
    l0 = json.loads((out / "lists" / "L0.json").read_text())["trials"]
    assert ([t["stimulus_id"] for t in l0]
            == [r["stimulus_id"] for r in rows if r["list_id"] == "L0"])
    assert [t["seq"] for t in l0] == list(range(len(l0)))
    for name in ("jspsych.js", "jspsych.css", "plugin-fullscreen.js",
                 "plugin-html-keyboard-response.js"):
        assert (out / "public" / "vendor" / name).stat().st_size > 1000
    assert not (out / "public" / "study.json").exists()  # only public/ is served


def test_existing_site_needs_overwrite(study, tmp_path):
    lists, stimuli = study
    build_site([lists], stimuli, tmp_path / "site")
    with pytest.raises(InputError, match="--overwrite"):
        build_site([lists], stimuli, tmp_path / "site")
    build_site([lists], stimuli, tmp_path / "site", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".site")) == []


def _rewrite(lists: Path, **change) -> Path:
    rows = read_rows(lists, TRIAL_LIST_COLUMNS)
    rows[1].update(change)
    return write_table(lists.parent / "bad.csv", rows, TRIAL_LIST_COLUMNS)


@pytest.mark.parametrize("change, message", [
    ({"file": "lists.csv"}, "outside the stimulus set"),
    ({"file": "/etc/passwd"}, "relative to the list's folder"),
    ({"file": "../set/images/nothere.png"}, "not found"),
    ({"stimulus_id": "ghost"}, "not in"),
    ({"file": "../set/images/img01_l0.png"}, "in the manifest"),
    ({"category": "cat"}, "category"),
    ({"practice": "yes"}, "practice"),
    ({"list_id": "../evil"}, "list_id"),
    ({"block": "one"}, "block must be an integer"),
    ({"trial": "2"}, "repeats"),
])
def test_bad_list_rows_are_named(study, change, message):
    lists, stimuli = study
    bad = _rewrite(lists, **change)
    with pytest.raises(InputError, match=message) as err:
        load_lists([bad], stimuli)
    assert "bad.csv" in str(err.value)


def test_failed_build_leaves_nothing(study, tmp_path):
    lists, stimuli = study
    bad = _rewrite(lists, stimulus_id="ghost")
    with pytest.raises(InputError):
        build_site([bad], stimuli, tmp_path / "site")
    assert not (tmp_path / "site").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".site")]


def test_missing_node_modules_explains_fix(study, tmp_path):
    lists, stimuli = study
    with pytest.raises(InputError, match="make web-deps"):
        build_site([lists], stimuli, tmp_path / "site", node_modules=tmp_path / "nm")


@pytest.mark.parametrize("keys", [["f"], ["f", "f"], ["f", "jj"], ["F;", "J"], ["f,j"],
                                  ["f", "j", "k"]])
def test_bad_keys_refused(study, tmp_path, keys):
    lists, stimuli = study
    try:
        rc = dispatch("python -m experiment", COMMANDS, [
            "build-online", "--lists", str(lists), "--stimuli", str(stimuli),
            "--out", str(tmp_path / "site"), "--keys", *keys])
    except SystemExit as stop:   # refused when the command line is read
        rc = stop.code
    assert rc == 2 and not (tmp_path / "site").exists()


def test_missing_manifest_is_named(study, tmp_path):
    lists, stimuli = study
    copy = tmp_path / "set2"
    shutil.copytree(stimuli, copy)
    (copy / "manifest.csv").unlink()
    with pytest.raises(InputError, match="manifest.csv"):
        load_lists([lists], copy)


def test_builds_from_lists_written_by_experiment_lists_with_practice(tmp_path):
    # the real list writer names files relative to the list folder, practice from another set
    from experiment.lists import ListConfig, write_lists
    from tests.support.stimulus_sets import make_stimulus_set as make_set

    make_set(tmp_path / "set", 3, 3, 3)
    make_set(tmp_path / "practice", 2, 2, 3, prefix="prac")
    paths = write_lists(tmp_path / "set", tmp_path / "lists", ListConfig(n_practice=4),
                        tmp_path / "practice")
    out = build_site([tmp_path / "lists"], tmp_path / "set", tmp_path / "site")
    trials = json.loads((out / "lists" / "list-01.json").read_text())["trials"]
    rows = read_rows(paths[0], TRIAL_LIST_COLUMNS)
    assert [t["stimulus_id"] for t in trials] == [r["stimulus_id"] for r in rows]
    practice = [t for t in trials if t["practice"]]
    assert len(practice) == 4 and all(t["file"].startswith("practice/") for t in practice)
    assert all(t["file"].startswith("stimuli/") for t in trials if not t["practice"])
    for t in trials:  # every URL the page loads is in the site, byte-identical to its source
        served = out / "public" / t["file"]
        row = next(r for r in rows if r["stimulus_id"] == t["stimulus_id"])
        assert served.read_bytes() == (paths[0].parent / row["file"]).read_bytes()
        assert "src" not in t


# ---- issue 12: verified stimuli, suite folders, the title, the serve hint, bad --out

def _build_cli(lists, stimuli, out, *more) -> int:
    return dispatch("python -m experiment", COMMANDS, [
        "build-online", "--lists", str(lists), "--stimuli", str(stimuli), "--out", str(out),
        *more])


def _one_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("error:") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_a_changed_stimulus_is_refused_by_name(study, tmp_path, capsys):
    lists, stimuli = study
    used = (lists.parent / read_rows(lists, TRIAL_LIST_COLUMNS)[1]["file"]).resolve()
    with Image.open(used) as im:   # same size and format, one pixel different
        pixels = np.array(im)
    pixels[0, 0] = 255 - pixels[0, 0]
    Image.fromarray(pixels).save(used)
    assert _build_cli(lists, stimuli, tmp_path / "site") == 2
    err = _one_error(capsys)
    assert used.name in err and "changed since" in err and "manifest.csv" in err
    assert not (tmp_path / "site").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".site")]


def test_a_changed_practice_image_is_refused_by_its_list_sha256(tmp_path):
    from experiment.lists import ListConfig, write_lists
    from tests.support.stimulus_sets import make_stimulus_set as make_set

    make_set(tmp_path / "set", 3, 3, 3)
    make_set(tmp_path / "practice", 2, 2, 3, prefix="prac")
    paths = write_lists(tmp_path / "set", tmp_path / "lists", ListConfig(n_practice=4),
                        tmp_path / "practice")
    row = next(r for r in read_rows(paths[0], TRIAL_LIST_COLUMNS) if r["practice"] == "1")
    practice_file = (paths[0].parent / row["file"]).resolve()
    practice_file.write_bytes(practice_file.read_bytes()[:-10])   # shrunk
    with pytest.raises(InputError, match="changed since") as err:
        build_site([tmp_path / "lists"], tmp_path / "set", tmp_path / "site")
    assert practice_file.name in str(err.value) and "list-" in str(err.value)
    assert not (tmp_path / "site").exists()


def test_site_is_a_marked_suite_folder_with_umask_permissions(study, tmp_path):
    lists, stimuli = study
    old = os.umask(0o022)
    try:
        out = build_site([lists], stimuli, tmp_path / "site")
    finally:
        os.umask(old)
    assert (out / MARK).is_file()
    for folder in (out, out / "public", out / "public" / "stimuli", out / "lists"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o755, folder
    for f in (out / "study.json", out / "public" / "index.html", out / "lists" / "L0.json"):
        assert stat.S_IMODE(f.stat().st_mode) == 0o644, f


def test_overwrite_replaces_only_a_site_the_suite_made(study, tmp_path, capsys):
    lists, stimuli = study
    mine = tmp_path / "site"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    assert _build_cli(lists, stimuli, mine, "--overwrite") == 2
    assert "not made by this suite" in _one_error(capsys)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize("where", ["a file", "under a file", "unwritable", "the stimulus set"])
def test_bad_out_is_one_error_before_any_work(study, tmp_path, capsys, where):
    lists, stimuli = study
    (tmp_path / "a-file").write_text("x")
    locked = tmp_path / "locked"
    locked.mkdir()
    out = {"a file": tmp_path / "a-file", "under a file": tmp_path / "a-file" / "site",
           "unwritable": locked / "site", "the stimulus set": stimuli}[where]
    with unwritable(locked):
        assert _build_cli(lists, stimuli, out, "--overwrite") == 2
    err = _one_error(capsys)
    assert str(out) in err
    assert (tmp_path / "a-file").read_text() == "x" and list(locked.iterdir()) == []
    assert (stimuli / "manifest.csv").is_file()


def test_title_heads_the_page_escaped(study, tmp_path):
    lists, stimuli = study
    title = 'Tiere & <Dinge> "schnell"'
    assert _build_cli(lists, stimuli, tmp_path / "site", "--title", title) == 0
    page = (tmp_path / "site" / "public" / "index.html").read_text()
    escaped = "Tiere &amp; &lt;Dinge&gt; &quot;schnell&quot;"
    assert f"<title>{escaped}</title>" in page
    assert re.search(r'<h1 id="rc-title"[^>]*>' + re.escape(escaped) + "</h1>", page)
    assert "<Dinge>" not in page and "Animal or not?" not in page
    assert json.loads((tmp_path / "site" / "study.json").read_text())["title"] == title
    # the page loads the script that hides the heading while trials run
    assert '<script src="site-title.js" defer></script>' in page
    assert (tmp_path / "site" / "public" / "site-title.js").is_file()


@pytest.mark.parametrize("title", ["", "   ", "x" * 121, "tab\there"])
def test_unusable_titles_are_refused(study, tmp_path, capsys, title):
    lists, stimuli = study
    assert _build_cli(lists, stimuli, tmp_path / "site", "--title", title) == 2
    assert "--title" in _one_error(capsys) and not (tmp_path / "site").exists()


def test_serve_hint_is_shell_quoted(study, tmp_path, capsys):
    lists, stimuli = study
    out = tmp_path / "my site; rm -rf x"
    assert _build_cli(lists, stimuli, out) == 0
    hint = capsys.readouterr().out.split("serve it with: ", 1)[1].strip()
    assert shlex.split(hint) == ["python", "-m", "experiment", "serve", str(out),
                                 "--db", "study.sqlite"]


# ---- issue 13: the page's code by concern, its limits and fields from the Python side

def test_page_modules_and_their_config_come_from_the_python_side(study, tmp_path):
    lists, stimuli = study
    out = tmp_path / "site"
    assert _build_cli(lists, stimuli, out, "--too-slow-ms", "750") == 0
    public = out / "public"
    page = (public / "index.html").read_text()
    assert '<script type="module" src="experiment.js"></script>' in page
    # every module the page imports is in the site, the generated one included
    imported, todo = set(), ["experiment.js"]
    while todo:
        found = set(re.findall(r'from "\./([\w.-]+\.js)"', (public / todo.pop()).read_text()))
        todo += [n for n in found - imported if n != PAGE_CONFIG]
        imported |= found
    assert imported == {"checks.js", "delivery.js", "page.js", "timeline.js", "calibration.js",
                        "visual-angle.js", "resample.js", PAGE_CONFIG}
    assert all((public / name).is_file() for name in imported)
    config = read_page_module(public / PAGE_CONFIG)
    # the fields the page posts are those the server accepts
    assert config["trial_fields"] == sorted(TRIAL_FIELDS)
    assert config["optional_trial_fields"] == sorted(OPTIONAL_FIELDS)
    # the limits are the study's own Timing (as study.json has it), with its response window
    timing = json.loads((out / "study.json").read_text())["timing"]
    assert timing["too_slow_ms"] == 750.0
    assert config["timing"] == {**timing, "window_ms": Timing().window_ms}
    assert config["timing"]["window_ms"] == 550.0
    # the page writes none of these numbers itself
    source = "".join((public / n).read_text() for n in ("experiment.js", "timeline.js",
                                                         "checks.js"))
    for literal in ("1100", "1600", "550", "256", "48", "250", "0.4"):
        assert not re.search(rf"(?<![\w.]){re.escape(literal)}(?![\w.])", source), literal


# ---- issue 17: stimulus size, the lab's setup and its own texts --------------------------------

def test_size_setup_and_the_labs_texts_reach_the_page_and_the_provenance(study, tmp_path):
    import hashlib
    lists, stimuli = study
    consent = tmp_path / "consent.md"
    consent.write_text("## Our consent\n\nEthics ref 42. <script>alert(1)</script>\n")
    instructions = tmp_path / "instructions.html"
    instructions.write_text('<p onclick="x()">Press {animal_key} for animals, '
                            '{non_animal_key} otherwise.</p><img src=x onerror=alert(1)>')
    debrief = tmp_path / "debrief.md"
    debrief.write_text("Thanks! [More](https://lab.example/about)\n")
    out = tmp_path / "site"
    assert _build_cli(lists, stimuli, out, "--stimulus-deg", "6.5", "--background", "grey",
                      "--practice-criterion", "0.8", "--practice-max-rounds", "2",
                      "--consent", str(consent), "--instructions", str(instructions),
                      "--debrief", str(debrief)) == 0
    config = read_page_module(out / "public" / PAGE_CONFIG)
    assert config["stimulus_deg"] == 6.5
    # lab_setup.text_colour
    assert (config["background"], config["text_colour"]) == ("#808080", "#000000")
    assert config["practice"] == {"criterion": 0.8, "max_rounds": 2}
    assert config["calibration"]["card_width_mm"] == pytest.approx(85.6)
    assert config["calibration"]["px_per_cm_min"] == 15.0
    texts = config["texts"]
    assert "<h2>Our consent</h2>" in texts["consent"] and "<script" not in texts["consent"]
    assert texts["instructions"] == ('<p>Press <span class="rc-key">F</span> for animals, '
                                     '<span class="rc-key">J</span> otherwise.</p>')
    assert 'href="https://lab.example/about"' in texts["debrief"]
    study_json = json.loads((out / "study.json").read_text())
    assert study_json["stimulus_deg"] == 6.5 and study_json["practice_max_rounds"] == 2
    prov = json.loads((out / "provenance.json").read_text())["parameters"]["texts"]
    for name, f in (("consent", consent), ("instructions", instructions), ("debrief", debrief)):
        assert prov[name]["sha256"] == hashlib.sha256(f.read_bytes()).hexdigest()
        assert prov[name]["file"] == str(f)
    # the chinrest plugin is served from the site like the other jsPsych files
    vendored = out / "public" / "vendor" / "plugin-virtual-chinrest.js"
    assert vendored.read_bytes().startswith(b"var jsPsychVirtualChinrest=")
    assert '<script src="vendor/plugin-virtual-chinrest.js"></script>' in (
        out / "public" / "index.html").read_text()


def test_defaults_are_8_degrees_white_built_in_texts_and_native_size_is_an_option(
        study, tmp_path):
    lists, stimuli = study
    assert _build_cli(lists, stimuli, tmp_path / "a") == 0
    config = read_page_module(tmp_path / "a" / "public" / PAGE_CONFIG)
    assert config["stimulus_deg"] == 8.0 and config["background"] == "#ffffff"
    assert config["texts"] == {"consent": None, "instructions": None, "debrief": None}
    assert config["practice"] == {"criterion": None, "max_rounds": 3}
    assert json.loads((tmp_path / "a" / "provenance.json").read_text())["parameters"]["texts"] == {}
    assert _build_cli(lists, stimuli, tmp_path / "b", "--native-size") == 0
    assert read_page_module(tmp_path / "b" / "public" / PAGE_CONFIG)["stimulus_deg"] is None


@pytest.mark.parametrize("more,message", [
    (["--native-size", "--stimulus-deg", "8"], "--native-size and --stimulus-deg"),
    (["--consent", "nowhere.md"], "--consent nowhere.md: file not found"),
    (["--debrief", "debrief.txt"], "use a Markdown (.md) or HTML (.html) file"),
])
def test_bad_size_or_text_options_are_one_error_and_no_site(study, tmp_path, capsys, more,
                                                            message):
    lists, stimuli = study
    (tmp_path / "debrief.txt").write_text("hi")
    more = [str(tmp_path / m) if m.endswith((".md", ".txt")) else m for m in more]
    out = tmp_path / "site"
    assert _build_cli(lists, stimuli, out, *more) == 2
    err = _one_error(capsys)
    assert message.replace("nowhere.md", str(tmp_path / "nowhere.md")) in err
    assert not out.exists()


@pytest.mark.parametrize("option,value", [("--stimulus-deg", "0.1"), ("--stimulus-deg", "90"),
                                          ("--practice-criterion", "1.5"),
                                          ("--practice-max-rounds", "0"),
                                          ("--background", "not-a-colour")])
def test_out_of_range_setup_is_refused_at_parse_time(study, tmp_path, capsys, option, value):
    lists, stimuli = study
    with pytest.raises(SystemExit) as stop:
        _build_cli(lists, stimuli, tmp_path / "site", option, value)
    assert stop.value.code == 2 and option in capsys.readouterr().err
    assert not (tmp_path / "site").exists()
