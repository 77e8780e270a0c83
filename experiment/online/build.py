"""Bundle the browser experiment: trial lists + stimuli + jsPsych + our plugin -> a static site."""

from __future__ import annotations

import dataclasses
import hashlib
import html
import json
import re
import secrets
import shlex
import shutil
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from experiment.lab_setup import colour, text_colour
from experiment.online.config import (
    SAFE_ID,
    SCREEN_OUT_REASONS,
    CalibrationLimits,
    StudyConfig,
    Timing,
    parse_keys,
)
from experiment.online.sanitize import LabText, read_lab_text
from experiment.online.validation import OPTIONAL_FIELDS, TRIAL_FIELDS
from experiment.schema import TRIAL_LIST_COLUMNS, read_rows
from experiment.visual_angle import BLIND_SPOT_DEG, CARD_WIDTH_CM
from stimuli.schema import CATEGORIES
from suite.atomic import atomic_write_text
from suite.cli_types import exactly, float_in, int_in, list_item
from suite.errors import InputError
from suite.outputs import building_folder, check_output_folder
from suite.provenance import provenance, verify_files

REPO_ROOT = Path(__file__).resolve().parents[2]
WEB_DIR = Path(__file__).resolve().parent / "web"
# the jsPsych browser builds the page loads, from node_modules (package-lock.json pins them)
VENDOR_FILES = {
    "jspsych/dist/index.browser.min.js": "jspsych.js",
    "jspsych/css/jspsych.css": "jspsych.css",
    "@jspsych/plugin-fullscreen/dist/index.browser.min.js": "plugin-fullscreen.js",
    "@jspsych/plugin-html-keyboard-response/dist/index.browser.min.js":
        "plugin-html-keyboard-response.js",
    # the virtual chinrest (Li et al. 2020): card-size px/cm and blind-spot viewing distance
    "@jspsych/plugin-virtual-chinrest/dist/index.browser.min.js": "plugin-virtual-chinrest.js",
}
# the page's code by concern (docs/online.md "Page code"); delivery.js also goes into ClickMe
OUR_FILES = ("index.html", "experiment.css", "experiment.js", "page.js", "checks.js",
             "timeline.js", "delivery.js", "plugin-rapid-categorization.js", "site-title.js",
             "calibration.js", "visual-angle.js", "resample.js")
# written by the build: the limits and the posted trial's fields, from config.py/validation.py
PAGE_CONFIG = "study-config.js"
MAX_TITLE = 120
# the image's width in degrees unless --stimulus-deg/--native-size say otherwise: within the
# 5-11 degrees the paper's 256 px spanned on likely set-ups, near their middle
DEFAULT_STIMULUS_DEG = 8.0


def _int(value: str, what: str, where: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InputError(f"{where}: {what} must be an integer, got {value!r}") from None


def _list_row(row: dict, where: str, stimuli: Path, manifest: dict, list_dir: Path,
              manifest_sha: dict, f: str) -> dict:
    """One validated trial of a list, as the page and the server use it."""
    list_id = row["list_id"]
    if not SAFE_ID.match(list_id):
        raise InputError(f"{where}: list_id {list_id!r} must be 1-64 letters, digits, "
                         "'_', '.', '-'")
    practice = row["practice"].strip()
    if practice not in ("0", "1"):
        raise InputError(f"{where}: practice must be 0 or 1, got {practice!r}")
    if row["category"] not in CATEGORIES:
        raise InputError(f"{where}: category must be one of {CATEGORIES}, got {row['category']!r}")
    # Trial lists name files relative to the list CSV's own folder (experiment.lists).
    if not row["file"] or PurePosixPath(row["file"]).is_absolute():
        raise InputError(f"{where}: file {row['file']!r} must be a path relative to the "
                         "list's folder")
    src = (list_dir / row["file"]).resolve()
    if not src.is_file():
        raise InputError(f"{where}: stimulus file {src} not found; keep the lists beside the "
                         "stimulus sets they were made from")
    sid = row["stimulus_id"]
    root = stimuli.resolve()
    if src.is_relative_to(root):
        rel = src.relative_to(root).as_posix()
        if sid not in manifest:
            raise InputError(f"{where}: stimulus_id {sid!r} is not in {stimuli / 'manifest.csv'}")
        if manifest[sid] != rel:
            raise InputError(f"{where}: stimulus_id {sid!r} is {manifest[sid]!r} in the manifest "
                             f"{stimuli / 'manifest.csv'}, not {rel!r}; regenerate the lists "
                             "from this set")
        site_file = f"stimuli/{rel}"
    elif practice == "1":
        # practice images come from a separate set (experiment.lists --practice-stimuli)
        tag = hashlib.sha256(str(src.parent).encode()).hexdigest()[:10]
        site_file = f"practice/{tag}/{src.name}"
    else:
        raise InputError(f"{where}: test stimulus {src} lies outside the stimulus set {root}; "
                         "check --stimuli points at the set the lists were made from")
    level_percent = row["level_percent"].strip()
    if level_percent:
        try:
            level_percent = float(level_percent)
        except ValueError:
            raise InputError(f"{where}: level_percent {level_percent!r} is not a number") from None
    sha = (row.get("sha256") or "").strip().lower()
    if src.is_relative_to(root):
        if sha and manifest_sha.get(sid, "") and sha != manifest_sha[sid]:
            raise InputError(f"{where}: sha256 of {sid!r} differs from {stimuli / 'manifest.csv'}; "
                             "the lists were made from another version of this set — "
                             "regenerate them")
        sha = manifest_sha.get(sid, "")
    return {
        "block": _int(row["block"], "block", where), "trial": _int(row["trial"], "trial", where),
        "practice": int(practice), "stimulus_id": sid, "file": site_file, "src": str(src),
        "sha256": sha, "source": str(stimuli / "manifest.csv") if src.is_relative_to(root) else f,
        "image_id": row["image_id"], "category": row["category"],
        "level_index": _int(row["level_index"], "level_index", where),
        "level_percent": level_percent if level_percent != "" else None,
        "url": quote(site_file),
    }


def load_lists(paths: Sequence[str | Path], stimuli: Path) -> dict[str, list[dict]]:
    """Read trial-list CSVs (files, or folders of *.csv) -> {list_id: trials in file order}."""
    manifest_path = stimuli / "manifest.csv"
    manifest_rows = read_rows(manifest_path, ("stimulus_id", "file"))
    manifest = {r["stimulus_id"]: r["file"] for r in manifest_rows}
    manifest_sha = {r["stimulus_id"]: (r.get("sha256") or "") for r in manifest_rows}
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.glob("*.csv"))
            if not found:
                raise InputError(f"{p}: no trial-list CSV files in this folder")
            files += found
        elif p.is_file():
            files.append(p)
        else:
            raise InputError(f"{p}: no such trial-list file or folder")
    lists: dict[str, list[dict]] = {}
    owner: dict[str, Path] = {}
    for f in files:
        for i, row in enumerate(read_rows(f, TRIAL_LIST_COLUMNS), start=2):
            lid = row["list_id"]
            if lid in owner and owner[lid] != f:
                raise InputError(f"{f}: list_id {lid!r} also appears in {owner[lid]}")
            owner[lid] = f
            lists.setdefault(lid, []).append(_list_row(row, f"{f} line {i}", stimuli, manifest,
                                                          f.parent, manifest_sha, str(f)))
    if not lists:
        raise InputError(f"no trials in {', '.join(map(str, files))}")
    for lid, trials in lists.items():
        keys = [(t["practice"], t["block"], t["trial"]) for t in trials]
        if len(set(keys)) != len(keys):
            raise InputError(f"list {lid!r} ({owner[lid]}) repeats a (practice, block, trial) "
                             "triple; each trial must be unique")
        for seq, t in enumerate(trials):
            t["seq"] = seq
    # every image the site will copy must be the one its manifest (or list) recorded: a
    # swapped or shrunk file would otherwise be shown to every participant without a word
    by_source: dict[str, list] = {}
    for trials in lists.values():
        for t in trials:
            by_source.setdefault(t.pop("source"), []).append((t["src"], t.pop("sha256")))
    for source, pairs in by_source.items():
        verify_files(pairs, source)
    return lists


def build_site(lists_paths: Sequence[str | Path], stimuli: str | Path, out: str | Path,
               config: StudyConfig | None = None, node_modules: str | Path | None = None,
               overwrite: bool = False, texts: Sequence[LabText] = ()) -> Path:
    """Write the study site atomically: public/ is served, lists/ and study.json only read.

    ``texts``: the lab's own consent/instructions/debrief (read_lab_text); their HTML is in
    ``config.texts`` (with_texts) and their files' sha256 go into provenance.json.
    """
    stimuli, out = Path(stimuli), Path(out)
    check_output_folder(out, inputs=[stimuli, *lists_paths, *(t.file for t in texts)],
                        overwrite=overwrite)
    nm = Path(node_modules) if node_modules else REPO_ROOT / "node_modules"
    missing = [src for src in VENDOR_FILES if not (nm / src).is_file()]
    if missing:
        raise InputError(f"{nm}: jsPsych files missing ({missing[0]} …); run `make web-deps` "
                         "(npm ci) in the repository root")
    lists = load_lists(lists_paths, stimuli)
    if config is None:
        config = StudyConfig(study_id=secrets.token_hex(4), lists=tuple(lists))
    else:
        config = StudyConfig(**{**config.__dict__, "lists": tuple(lists)})
    # written aside, marked as the suite's, swapped in only when complete (suite.outputs)
    with building_folder(out, "experiment build-online") as tmp:
        public = tmp / "public"
        (public / "vendor").mkdir(parents=True)
        for src, name in VENDOR_FILES.items():
            shutil.copyfile(nm / src, public / "vendor" / name)
        for name in OUR_FILES:
            shutil.copyfile(WEB_DIR / name, public / name)
        atomic_write_text(public / "index.html",
                          titled_page((WEB_DIR / "index.html").read_text(), config.title))
        atomic_write_text(public / PAGE_CONFIG, page_module(
            page_config(config), "experiment/online/config.py (Timing) and "
            "experiment/online/validation.py (TRIAL_FIELDS)"))
        used = sorted({(t["file"], t.pop("src")) for trials in lists.values() for t in trials})
        for site_file, src in used:
            dest = public / site_file
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)
        (tmp / "lists").mkdir()
        for lid, trials in lists.items():
            atomic_write_text(tmp / "lists" / f"{lid}.json",
                              json.dumps({"list_id": lid, "trials": trials}, indent=1))
        atomic_write_text(tmp / "study.json", json.dumps(config.to_json(), indent=2))
        atomic_write_text(tmp / "provenance.json", json.dumps(provenance(
            lists=[str(p) for p in lists_paths], stimuli=str(stimuli), n_stimuli=len(used),
            texts={t.option.lstrip("-"): t.record() for t in texts},
            study=config.to_json()), indent=2, default=str))
    return out


def page_config(config: StudyConfig) -> dict:
    """What the study page enforces and posts, from the Python side (one source): the
    study's timing and limits (Timing, with the response window it implies) and the fields
    of a posted trial as validation.py accepts them."""
    timing = dataclasses.asdict(config.timing)
    timing["window_ms"] = config.timing.window_ms
    return {"timing": timing, "trial_fields": sorted(TRIAL_FIELDS),
            "optional_trial_fields": sorted(OPTIONAL_FIELDS),
            "stimulus_deg": config.stimulus_deg,
            "calibration": {**dataclasses.asdict(config.calibration),
                            "card_width_mm": CARD_WIDTH_CM * 10, "card_height_mm": 53.98,
                            "blind_spot_deg": BLIND_SPOT_DEG},
            "screen_out_reasons": list(SCREEN_OUT_REASONS),
            "background": config.background, "text_colour": config.text_colour,
            "practice": {"criterion": config.practice_criterion,
                         "max_rounds": config.practice_max_rounds},
            "texts": dict(config.texts)}


def hex_colour(rgb: Sequence[int]) -> str:
    """(128, 128, 128) -> '#808080'."""
    return "#" + "".join(f"{int(v):02x}" for v in rgb)


def with_keys(text_html: str, keys: dict) -> str:
    """The lab's instructions with {animal_key} and {non_animal_key} filled in (as the lab
    runner does); the key line is added when the text does not name both."""
    def key(k: str) -> str:
        return f'<span class="rc-key">{html.escape(k.upper())}</span>'
    out = (text_html.replace("{animal_key}", key(keys["animal"]))
           .replace("{non_animal_key}", key(keys["non-animal"])))
    if "{animal_key}" not in text_html or "{non_animal_key}" not in text_html:
        out += (f"<p>Press {key(keys['animal'])} for <b>animal</b> and "
                f"{key(keys['non-animal'])} for <b>no animal</b>.</p>")
    return out


def with_texts(config: StudyConfig, texts: Sequence[LabText]) -> StudyConfig:
    """``config`` with the lab's texts (HTML) in place of the built-in ones."""
    given = {t.option.lstrip("-"): t.html for t in texts}
    if "instructions" in given:
        given["instructions"] = with_keys(given["instructions"], config.keys)
    return dataclasses.replace(config, texts={**config.texts, **given})


def page_module(data: dict, source: str) -> str:
    """An ES module whose default export is ``data`` (JSON is valid JavaScript)."""
    return (f"// Written by the site build from {source}; do not edit.\n"
            f"export default Object.freeze({json.dumps(data, indent=1, sort_keys=True)});\n")


def read_page_module(path: Path) -> dict:
    """The data of a module page_module wrote (for checks and tests)."""
    text = path.read_text()
    start, end = text.index("Object.freeze(") + len("Object.freeze("), text.rindex(");")
    return json.loads(text[start:end])


def titled_page(page: str, title: str) -> str:
    """index.html with the study's title (escaped) as its <title> and its heading."""
    text = html.escape(title)
    page, n_title = re.subn(r"<title>.*?</title>", lambda _: f"<title>{text}</title>", page,
                            count=1)
    page, n_head = re.subn(r'(<h1 id="rc-title"[^>]*>).*?(</h1>)',
                           lambda m: m.group(1) + text + m.group(2), page, count=1)
    if (n_title, n_head) != (1, 1):
        raise RuntimeError("index.html lost its <title> or <h1 id=\"rc-title\">")
    return page


def check_title(title: str) -> str:
    """The --title as given, or InputError if it cannot head a page."""
    if not title.strip() or len(title) > MAX_TITLE or not title.isprintable():
        raise InputError(f"--title {title!r}: give 1-{MAX_TITLE} printable characters")
    return title


def add_arguments(parser) -> None:
    parser.add_argument("--lists", nargs="+", type=list_item(), required=True, metavar="PATH",
                        help="trial-list CSV files or folders of them, separated by spaces")
    parser.add_argument("--stimuli", required=True,
                        help="stimulus set folder (manifest.csv + images)")
    parser.add_argument("--out", required=True, help="output folder: the site to write")
    parser.add_argument("--keys", nargs="+", action=exactly(2), type=list_item(),
                        default=["f", "j"], metavar="KEY",
                        help="animal key, then non-animal key, separated by a space (default f j)")
    parser.add_argument("--study-id", default=None, help="id of this study (default: random)")
    parser.add_argument("--title", default=StudyConfig.title,
                        help="the page's title and heading (default: %(default)s)")
    parser.add_argument("--completion-code", default="",
                        help="code shown at the end (e.g. Prolific's completion code)")
    parser.add_argument("--completion-url", default="",
                        help="URL the page goes to at the end, e.g. "
                             "https://app.prolific.com/submissions/complete?cc=CODE")
    parser.add_argument("--too-slow-ms", type=float_in(0, 10_000, low_open=True),
                        default=Timing.too_slow_ms,
                        help="how long the 'too slow' feedback after a time-out stays, ms "
                             "(default %(default)g)")
    size = parser.add_argument_group("stimulus size (docs/online.md: virtual chinrest)")
    size.add_argument("--stimulus-deg", type=float_in(0.5, 60), default=None, metavar="DEG",
                      help="image width in degrees of visual angle, after the virtual chinrest "
                           f"(default {DEFAULT_STIMULUS_DEG:g}, within the paper's 5-11 "
                           "degrees)")
    size.add_argument("--native-size", action="store_true",
                      help="no chinrest: one image pixel per device pixel, angle unknown (the "
                           "paper's way)")
    setup = parser.add_argument_group("the lab's setup")
    setup.add_argument("--background", type=colour, default="white", metavar="COLOUR",
                       help="page background: a colour name or #rrggbb (default white, as in "
                            "the paper; mid-grey is #808080)")
    setup.add_argument("--practice-criterion", type=float_in(0, 1), default=None, metavar="P",
                       help="repeat the practice trials until this accuracy (0-1) is reached")
    setup.add_argument("--practice-max-rounds", type=int_in(1, 20), default=3, metavar="N",
                       help="at most this many practice rounds with --practice-criterion "
                            "(default 3; then the test goes on, recorded)")
    for name, what in (("consent", "consent form"), ("instructions", "instructions ("
                        "{animal_key} and {non_animal_key} are filled in)"),
                       ("debrief", "debriefing shown at the end")):
        setup.add_argument(f"--{name}", metavar="FILE", default=None,
                           help=f"the lab's {what}: Markdown (.md) or HTML (.html), sanitized "
                                "(default: the built-in text)")
    parser.add_argument("--node-modules", default=None,
                        help="folder holding jspsych (default: the repository's node_modules)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing site")


def main(args) -> int:
    study_id = args.study_id or secrets.token_hex(4)
    if not SAFE_ID.match(study_id):
        raise InputError(f"--study-id {study_id!r}: use 1-64 letters, digits, '_', '.', '-'")
    if args.completion_url and not args.completion_url.startswith(("https://", "http://")):
        raise InputError(f"--completion-url {args.completion_url!r} must start with https://")
    if args.native_size and args.stimulus_deg is not None:
        raise InputError("--native-size and --stimulus-deg both given: native size draws the "
                         "images' own pixels (no angle); give one or the other")
    stimulus_deg = None if args.native_size else (args.stimulus_deg or DEFAULT_STIMULUS_DEG)
    texts = [read_lab_text(getattr(args, name), f"--{name}")
             for name in ("consent", "instructions", "debrief") if getattr(args, name)]
    background = tuple(args.background)
    config = StudyConfig(study_id=study_id, lists=(), keys=parse_keys(args.keys),
                         title=check_title(args.title), completion_code=args.completion_code,
                         completion_url=args.completion_url,
                         timing=Timing(too_slow_ms=args.too_slow_ms),
                         stimulus_deg=stimulus_deg,
                         calibration=CalibrationLimits(),
                         background=hex_colour(background),
                         text_colour=hex_colour(text_colour(background)),
                         practice_criterion=args.practice_criterion,
                         practice_max_rounds=args.practice_max_rounds)
    out = build_site(args.lists, args.stimuli, args.out, with_texts(config, texts),
                     args.node_modules, args.overwrite, texts)
    n = len(json.loads((out / "study.json").read_text())["lists"])
    print(f"wrote {out} ({n} lists); serve it with: python -m experiment serve "
          f"{shlex.quote(str(out))} --db study.sqlite")
    return 0
