"""Every command of the four front doors follows the command-line convention of
docs/commands.md ("The command line"), checked mechanically on the parsers themselves.

Each parser is built as ``suite.command_line.dispatch`` builds it, so what is checked here
is what a user meets. A renamed option's old spelling is refused with a clear message and
its new spelling works; a comma where a list is expected is refused with the space hint.
"""

from __future__ import annotations

import argparse
import importlib
import re

import pytest

from suite.cli_types import COMMA_HINT, int_at_least
from suite.command_line import dispatch

FRONT_DOORS = ("stimuli", "experiment", "models", "analysis")


def _commands(pkg: str) -> dict:
    return importlib.import_module(f"{pkg}.__main__").COMMANDS


ALL = [(pkg, name) for pkg in FRONT_DOORS for name in _commands(pkg)]
IDS = [f"{pkg} {name}" for pkg, name in ALL]

#: Commands whose --out folder holds work they continue rather than replace, so they have
#: no --overwrite (docs/commands.md): run-lab adds one participant's session at a time to
#: its folder; harmonize continues its run with --resume and refuses a folder holding one.
CONTINUED_FOLDERS = {("experiment", "run-lab"), ("models", "harmonize")}


def parser_of(pkg: str, name: str) -> argparse.ArgumentParser:
    """The parser ``python -m PKG NAME`` uses, built as dispatch builds it."""
    module_path, description = _commands(pkg)[name]
    parser = argparse.ArgumentParser(prog=f"python -m {pkg} {name}", description=description)
    importlib.import_module(module_path).add_arguments(parser)
    return parser


def options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """Each option string (not -h/--help) and its action."""
    return {s: a for a in parser._actions if not isinstance(a, argparse._HelpAction)
            for s in a.option_strings}


def is_list(action: argparse.Action) -> bool:
    return action.nargs in ("+", "*") or isinstance(action.nargs, int) and action.nargs > 1


@pytest.fixture(scope="module", params=ALL, ids=IDS)
def command(request):
    pkg, name = request.param
    return pkg, name, parser_of(pkg, name)


def test_every_front_door_has_commands():
    assert {pkg for pkg, _ in ALL} == set(FRONT_DOORS) and len(ALL) >= 20


def test_option_names_are_lowercase_hyphenated(command):
    _, _, parser = command
    for name in options(parser):
        assert re.fullmatch(r"--[a-z0-9]+(-[a-z0-9]+)*", name), name


def test_no_option_reads_a_comma_separated_list(command):
    _, _, parser = command
    for name, action in options(parser).items():
        if action.nargs == 0 or action.type is None or is_list(action):
            continue
        try:
            value = action.type("1,2")
        except (argparse.ArgumentTypeError, ValueError, TypeError):
            continue
        assert not isinstance(value, list | tuple), f"{name} splits '1,2' into {value!r}"


def test_every_list_is_space_separated_and_refuses_a_comma(command):
    _, _, parser = command
    lists = [a for a in parser._actions if is_list(a)]
    for action in lists:
        where = action.option_strings or action.dest
        # a fixed count goes through suite.cli_types.exactly, so its values are typed first
        assert action.nargs in ("+", "*"), f"{where}: nargs {action.nargs!r}"
        assert getattr(action.type, "refuses_commas", False), f"{where}: no list_item type"
        with pytest.raises(argparse.ArgumentTypeError, match=COMMA_HINT):
            action.type("a,b")


def test_out_says_whether_it_is_a_folder_or_a_file(command):
    pkg, name, parser = command
    out = options(parser).get("--out")
    if out is None:
        return
    assert out.help.startswith(("output folder", "output file")), out.help
    has_overwrite = "--overwrite" in options(parser)
    if out.help.startswith("output folder"):
        assert has_overwrite == ((pkg, name) not in CONTINUED_FOLDERS), (pkg, name)


def test_shared_names_have_the_shared_type(command):
    _, _, parser = command
    opts = options(parser)
    if "--seed" in opts:
        parse = opts["--seed"].type
        assert parse.__name__ == int_at_least(0).__name__
        assert parse("0") == 0 and parse("2025") == 2025
        with pytest.raises(argparse.ArgumentTypeError):
            parse("-1")
    for name in ("--n-boot", "--n-splits", "--batch-size", "--workers"):
        if name in opts:
            parse = opts[name].type
            assert opts[name].nargs is None and parse("100") == 100, name
            for bad in ("0", "2.5", "x"):
                with pytest.raises(argparse.ArgumentTypeError):
                    parse(bad)
    if "--levels" in opts:
        action = opts["--levels"]
        assert action.nargs == "+" and action.type("2.5") == 2.5 and action.type("100") == 100.0
        for bad in ("0", "101", "x"):
            with pytest.raises(argparse.ArgumentTypeError):
                action.type(bad)
    if "--size" in opts:    # the stimulus canvas side in px, nothing else
        assert opts["--size"].type("256") == 256 and "px" in opts["--size"].help
    if "--device" in opts:
        from models.zoo import device_argument
        assert opts["--device"].type is device_argument
    if "--weights" in opts:
        assert "--model" in opts
    if "--overwrite" in opts:
        assert opts["--overwrite"].nargs == 0 and opts["--overwrite"].default is False
    assert "--boot" not in opts                       # renamed --n-boot everywhere
    assert not {"--levels", "--n-levels"} <= set(opts)  # percentages or a count, never both


def test_every_help_runs(command, capsys):
    pkg, name, _ = command
    with pytest.raises(SystemExit) as stop:
        dispatch(f"python -m {pkg}", _commands(pkg), [name, "--help"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: python -m {pkg} {name}")


# ---- the old spellings: refused clearly; the new ones work ----------------------------------

def _parse(pkg, name, argv, capsys):
    """(namespace, None) or (None, the last stderr line) for ``argv``."""
    try:
        return parser_of(pkg, name).parse_args(argv), None
    except SystemExit as stop:
        assert stop.code == 2
        return None, capsys.readouterr().err.strip().splitlines()[-1]


POWER = ["--out", "p"]
LAB = ["--list", "l.csv", "--participant", "1"]
HARMONIZE = ["--model", "m", "--out", "r"]


@pytest.mark.parametrize("pkg, name, base, old, new, dest, value", [
    ("analysis", "power", POWER, ["--boot", "100"], ["--n-boot", "100"], "n_boot", 100),
    ("analysis", "power", POWER, ["--levels", "5"], ["--n-levels", "5"], "n_levels", 5),
    ("experiment", "run-lab", LAB, ["--size", "800x600"], ["--window-size", "800x600"],
     "window_size", (800, 600)),
    ("models", "harmonize", HARMONIZE, ["--workers", "0"], ["--loader-workers", "0"],
     "workers", 0),
], ids=["power --boot", "power --levels", "run-lab --size", "harmonize --workers"])
def test_a_renamed_option_old_spelling_fails_new_works(pkg, name, base, old, new, dest, value,
                                                       capsys):
    args, err = _parse(pkg, name, [*base, *old], capsys)
    assert args is None and f"unrecognized arguments: {' '.join(old)}" in err
    args, err = _parse(pkg, name, [*base, *new], capsys)
    assert err is None and getattr(args, dest) == value


OBSERVE = ["--stimuli", "s", "--out", "t.csv"]
ONLINE = ["--lists", "l", "--stimuli", "s", "--out", "site"]


@pytest.mark.parametrize("pkg, name, base, option, old, new, dest", [
    ("models", "observe", OBSERVE, "--model", ["a,b"], ["a", "b"], "model"),
    ("models", "observe", ["--model", "m", *OBSERVE], "--rule", ["top1,mass"], ["top1", "mass"],
     "rule"),
    ("models", "accuracy", ["--images", "i"], "--model", ["a,b"], ["a", "b"], "model"),
    ("models", "where", ["--images", "i"], "--model", ["a,b"], ["a", "b"], "model"),
    ("analysis", "power", POWER, "--n", ["4,8,16"], ["4", "8", "16"], "n"),
    ("analysis", "report", ["--out", "r"], "--trials", ["a.csv,b.csv"], ["a.csv", "b.csv"],
     "trials"),
    ("experiment", "run-lab", LAB, "--keys", ["f,j"], ["f", "j"], "keys"),
    ("experiment", "build-online", ONLINE, "--keys", ["f,j"], ["f", "j"], "keys"),
    ("stimuli", "build", ["--out", "o"], "--levels", ["1,10,100"], ["1", "10", "100"], "levels"),
    ("stimuli", "import-clickme", ["--out", "o"], "--clickme-keys", ["image,heatmap,label"],
     ["image", "heatmap", "label"], "clickme_keys"),
], ids=lambda v: v if isinstance(v, str) and v.startswith("--") else None)
def test_a_comma_list_is_refused_with_the_hint_and_spaces_work(pkg, name, base, option, old,
                                                               new, dest, capsys):
    args, err = _parse(pkg, name, [*base, option, *old], capsys)
    assert args is None and f"argument {option}" in err and COMMA_HINT in err
    args, err = _parse(pkg, name, [*base, option, *new], capsys)
    assert err is None
    expected = [float(v) for v in new] if dest == "levels" else \
        [int(v) for v in new] if dest == "n" else new
    assert list(getattr(args, dest)) == expected


def test_a_fixed_count_list_names_the_count(capsys):
    args, err = _parse("experiment", "run-lab", [*LAB, "--keys", "f"], capsys)
    assert args is None and "argument --keys: give 2 values separated by spaces, got 1" in err
    args, err = _parse("stimuli", "import-clickme", ["--out", "o", "--clicktionary-keys", "a"],
                       capsys)
    assert args is None and "give 2 or 3 values separated by spaces, got 1" in err
