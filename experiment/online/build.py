"""Bundle the browser experiment: trial lists + stimuli + jsPsych + our plugin -> a static site."""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from experiment.online.config import SAFE_ID, StudyConfig, Timing, parse_keys
from experiment.schema import TRIAL_LIST_COLUMNS, read_rows
from stimuli.atomic import atomic_write_text
from stimuli.errors import InputError
from stimuli.provenance import provenance
from stimuli.schema import CATEGORIES

REPO_ROOT = Path(__file__).resolve().parents[2]
WEB_DIR = Path(__file__).resolve().parent / "web"
# the jsPsych browser builds the page loads, from node_modules (package-lock.json pins them)
VENDOR_FILES = {
    "jspsych/dist/index.browser.min.js": "jspsych.js",
    "jspsych/css/jspsych.css": "jspsych.css",
    "@jspsych/plugin-fullscreen/dist/index.browser.min.js": "plugin-fullscreen.js",
    "@jspsych/plugin-html-keyboard-response/dist/index.browser.min.js":
        "plugin-html-keyboard-response.js",
}
OUR_FILES = ("index.html", "experiment.css", "experiment.js", "plugin-rapid-categorization.js")


def _int(value: str, what: str, where: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InputError(f"{where}: {what} must be an integer, got {value!r}") from None


def _list_row(row: dict, where: str, stimuli: Path, manifest: dict, list_dir: Path) -> dict:
    """One validated trial of a list, as the page and the server use it."""
    list_id = row["list_id"]
    if not SAFE_ID.match(list_id):
        raise InputError(f"{where}: list_id {list_id!r} must be 1-64 letters, digits, '_', '.', '-'")
    practice = row["practice"].strip()
    if practice not in ("0", "1"):
        raise InputError(f"{where}: practice must be 0 or 1, got {practice!r}")
    if row["category"] not in CATEGORIES:
        raise InputError(f"{where}: category must be one of {CATEGORIES}, got {row['category']!r}")
    # Trial lists name files relative to the list CSV's own folder (experiment.lists).
    if not row["file"] or PurePosixPath(row["file"]).is_absolute():
        raise InputError(f"{where}: file {row['file']!r} must be a path relative to the list's folder")
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
    return {
        "block": _int(row["block"], "block", where), "trial": _int(row["trial"], "trial", where),
        "practice": int(practice), "stimulus_id": sid, "file": site_file, "src": str(src),
        "image_id": row["image_id"], "category": row["category"],
        "level_index": _int(row["level_index"], "level_index", where),
        "level_percent": level_percent if level_percent != "" else None,
        "url": quote(site_file),
    }


def load_lists(paths: Sequence[str | Path], stimuli: Path) -> dict[str, list[dict]]:
    """Read trial-list CSVs (files, or folders of *.csv) -> {list_id: trials in file order}."""
    manifest_path = stimuli / "manifest.csv"
    manifest = {r["stimulus_id"]: r["file"]
                for r in read_rows(manifest_path, ("stimulus_id", "file"))}
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
                                                          f.parent))
    if not lists:
        raise InputError(f"no trials in {', '.join(map(str, files))}")
    for lid, trials in lists.items():
        keys = [(t["practice"], t["block"], t["trial"]) for t in trials]
        if len(set(keys)) != len(keys):
            raise InputError(f"list {lid!r} ({owner[lid]}) repeats a (practice, block, trial) "
                             "triple; each trial must be unique")
        for seq, t in enumerate(trials):
            t["seq"] = seq
    return lists


def build_site(lists_paths: Sequence[str | Path], stimuli: str | Path, out: str | Path,
               config: StudyConfig | None = None, node_modules: str | Path | None = None,
               overwrite: bool = False) -> Path:
    """Write the study site atomically: public/ is served, lists/ and study.json only read."""
    stimuli, out = Path(stimuli), Path(out)
    nm = Path(node_modules) if node_modules else REPO_ROOT / "node_modules"
    missing = [src for src in VENDOR_FILES if not (nm / src).is_file()]
    if missing:
        raise InputError(f"{nm}: jsPsych files missing ({missing[0]} …); run `make web-deps` "
                         "(npm ci) in the repository root")
    if out.exists() and not overwrite:
        raise InputError(f"{out} exists; pass --overwrite or choose another --out")
    lists = load_lists(lists_paths, stimuli)
    if config is None:
        config = StudyConfig(study_id=secrets.token_hex(4), lists=tuple(lists))
    else:
        config = StudyConfig(**{**config.__dict__, "lists": tuple(lists)})
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        public = tmp / "public"
        (public / "vendor").mkdir(parents=True)
        for src, name in VENDOR_FILES.items():
            shutil.copyfile(nm / src, public / "vendor" / name)
        for name in OUR_FILES:
            shutil.copyfile(WEB_DIR / name, public / name)
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
            study=config.to_json()), indent=2, default=str))
        if out.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
            out.rename(trash / out.name)
            tmp.rename(out)
            shutil.rmtree(trash)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def add_arguments(parser) -> None:
    parser.add_argument("--lists", nargs="+", required=True,
                        help="trial-list CSV files or folders of them")
    parser.add_argument("--stimuli", required=True, help="stimulus set folder (manifest.csv + images)")
    parser.add_argument("--out", required=True, help="site folder to write")
    parser.add_argument("--keys", default="f,j", help="animal key, non-animal key (default f,j)")
    parser.add_argument("--study-id", default=None, help="id of this study (default: random)")
    parser.add_argument("--title", default=StudyConfig.title)
    parser.add_argument("--completion-code", default="",
                        help="code shown at the end (e.g. Prolific's completion code)")
    parser.add_argument("--completion-url", default="",
                        help="URL the page goes to at the end, e.g. "
                             "https://app.prolific.com/submissions/complete?cc=CODE")
    parser.add_argument("--too-slow-ms", type=float, default=Timing.too_slow_ms)
    parser.add_argument("--node-modules", default=None,
                        help="folder holding jspsych (default: the repository's node_modules)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing site")


def main(args) -> int:
    study_id = args.study_id or secrets.token_hex(4)
    if not SAFE_ID.match(study_id):
        raise InputError(f"--study-id {study_id!r}: use 1-64 letters, digits, '_', '.', '-'")
    if args.completion_url and not args.completion_url.startswith(("https://", "http://")):
        raise InputError(f"--completion-url {args.completion_url!r} must start with https://")
    config = StudyConfig(study_id=study_id, lists=(), keys=parse_keys(args.keys),
                         title=args.title, completion_code=args.completion_code,
                         completion_url=args.completion_url,
                         timing=Timing(too_slow_ms=args.too_slow_ms))
    out = build_site(args.lists, args.stimuli, args.out, config, args.node_modules,
                     args.overwrite)
    n = len(json.loads((out / "study.json").read_text())["lists"])
    print(f"wrote {out} ({n} lists); serve it with: python -m experiment serve {out} "
          "--db study.sqlite")
    return 0
