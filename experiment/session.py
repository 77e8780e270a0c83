"""A lab session's files and rules, checked before any window opens: list, keys, resume.

Files for participant P live in ``OUT/sub-P.csv`` (trial table, one row appended and
fsynced per trial) and ``OUT/sub-P.json`` (participant, list, key mapping, screen,
refresh, frame statistics, one entry per start). A rerun with the same list resumes at the
first trial not in the CSV; a rerun with another list or another key mapping is refused.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from experiment.schema import LAB_TRIAL_COLUMNS, TRIAL_COLUMNS, TRIAL_LIST_COLUMNS, read_rows
from stimuli.schema import CATEGORIES
from suite.atomic import atomic_write_text
from suite.errors import InputError
from suite.provenance import file_sha256, verify_files

# Key names psychtoolbox and PsychoPy's keyboard both report; escape is reserved for quitting.
KNOWN_KEYS = frozenset(
    [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)]
    + ["left", "right", "up", "down", "space", "return", "slash", "backslash", "comma",
       "period", "semicolon", "lshift", "rshift", "lctrl", "rctrl"]
)
RESERVED_KEYS = frozenset(["escape"])  # quits the session
KEY_ORDERS = ("animal-first", "animal-second")
_PARTICIPANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}", re.ASCII)


def trial_key(row: dict) -> tuple[int, int]:
    """Identity of a trial within a list: (practice flag, trial number)."""
    return int(row["practice"]), int(row["trial"])


def load_trial_list(path: str | Path) -> list[dict]:
    """Read a trial list and check it.

    One list id, unique trials, known categories, files on disk.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a folder; --list takes one list file, "
                         f"e.g. {path / 'list-01.csv'}")
    rows = read_rows(path, required=TRIAL_LIST_COLUMNS)
    if not rows:
        raise InputError(f"{path}: the trial list has no trials; "
                         "write it with `python -m experiment lists`")
    ids = {r["list_id"] for r in rows}
    if len(ids) != 1:
        raise InputError(f"{path}: rows from several lists {sorted(ids)}; give one list per file")
    try:
        keys = [trial_key(r) for r in rows]
        for r in rows:
            int(r["block"])
    except ValueError as err:
        raise InputError(f"{path}: block, trial and practice must be integers ({err})") from None
    if len(set(keys)) != len(keys):
        raise InputError(f"{path}: a (practice, trial) pair appears twice; rewrite the list")
    bad = sorted({r["category"] for r in rows} - set(CATEGORIES))
    if bad:
        raise InputError(f"{path}: unknown category {bad}; expected {CATEGORIES}")
    missing = [r["file"] for r in rows if not (path.parent / r["file"]).is_file()]
    if missing:
        raise InputError(f"{path}: {len(missing)} stimulus file(s) not found, e.g. "
                         f"{path.parent / missing[0]}; paths are relative to the list's folder — "
                         "keep the list beside the stimulus set it was written for")
    return rows


def verify_stimuli(path: Path, rows: list[dict]) -> int | None:
    """Check every stimulus file of a list against the sha256 the list records, each once.

    Returns how many files were checked, or None for a list written before lists carried
    a ``sha256`` column (its files cannot be verified). A changed file is refused by name.
    """
    if "sha256" not in rows[0]:
        return None
    return verify_files([(Path(path).parent / r["file"], r["sha256"]) for r in rows], path)


def check_participant(participant: str) -> str:
    """Return the id if it is safe as a file name, else raise InputError."""
    if not _PARTICIPANT.fullmatch(participant):
        raise InputError(f"--participant {participant!r}: use 1-64 ASCII letters (A-Z, a-z), "
                         "digits (0-9), '-' or '_', starting with a letter or digit")
    return participant


def parse_keys(given: Sequence[str]) -> tuple[str, str]:
    """The two response keys of ``--keys`` (``--keys f j``), checked: different, known, not
    the reserved escape."""
    keys = tuple(k.strip().lower() for k in given)
    text = " ".join(given)
    if len(keys) != 2 or keys[0] == keys[1] or not all(keys):
        raise InputError(f"--keys {text}: give two different keys, e.g. --keys f j")
    reserved = [k for k in keys if k in RESERVED_KEYS]
    if reserved:
        raise InputError(f"--keys {text}: {reserved[0]} is reserved (it quits the session); "
                         "choose another key, e.g. --keys f j")
    unknown = [k for k in keys if k not in KNOWN_KEYS]
    if unknown:
        raise InputError(f"--keys {text}: unknown key name(s) {unknown}; use e.g. a-z, 0-9, "
                         "left, right")
    return keys  # type: ignore[return-value]


def key_mapping(keys: tuple[str, str], order: str) -> dict[str, str]:
    """Map categories to keys: ``animal-first`` gives the first key to animal."""
    if order not in KEY_ORDERS:
        raise InputError(f"--key-order {order!r}: use auto, {' or '.join(KEY_ORDERS)}")
    first, second = keys if order == "animal-first" else keys[::-1]
    return {"animal": first, "non-animal": second}


def id_form(participant: str) -> str:
    """An id with case and leading zeros of its numbers ignored: ``P01``, ``p1`` -> ``p1``."""
    return re.sub(r"\d+", lambda m: str(int(m.group())), participant.lower())


def existing_sessions(out_dir: Path) -> dict[str, Path]:
    """Participant id -> session JSON of every session already in ``out_dir``."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return {}
    return {p.stem[len("sub-"):]: p for p in sorted(out_dir.glob("sub-*.json"))}


def check_distinct_id(out_dir: Path, participant: str) -> None:
    """Refuse a new id that differs from one in ``out_dir`` only by case or leading zeros."""
    out_dir = Path(out_dir)
    if ((out_dir / f"sub-{participant}.json").exists()
            or (out_dir / f"sub-{participant}.csv").exists()):
        return
    others = (set(existing_sessions(out_dir))
              | {p.stem[len("sub-"):] for p in out_dir.glob("sub-*.csv")}) \
        if out_dir.is_dir() else set()
    clash = sorted(o for o in others if o != participant and id_form(o) == id_form(participant))
    if clash:
        raise InputError(f"--participant {participant}: {out_dir} already has participant "
                         f"{clash[0]} (sub-{clash[0]}.json); ids differing only in case or leading "
                         f"zeros are easily confused - use {clash[0]} to resume that session, or "
                         "another id")


def balanced_key_order(out_dir: Path, participant: str) -> tuple[str, dict]:
    """``--key-order auto``: the order fewer sessions in ``out_dir`` used so far.

    Ties go to animal-first.

    Sessions arrive one by one, so orders alternate whatever the id scheme; the counts and
    this session's place in the folder go into its JSON.
    """
    counts = {o: 0 for o in KEY_ORDERS}
    unknown = 0
    for other, path in existing_sessions(out_dir).items():
        if other == participant:
            continue
        try:
            order = json.loads(path.read_text(encoding="utf-8")).get("key_order")
        except (OSError, ValueError):
            order = None
        if order in counts:
            counts[order] += 1
        else:
            unknown += 1
    order = "animal-first" if counts["animal-first"] <= counts["animal-second"] else "animal-second"
    return order, {"rule": "auto: balanced over the sessions already in the output folder - this "
                           "session takes the key order fewer of them used (ties: animal-first)",
                   "sessions_before": {**counts, "unknown": unknown},
                   "session_number": sum(counts.values()) + unknown + 1}


@dataclass
class Session:
    """Where a participant's session stands: file paths, trials done, keys, the stored record."""

    csv_path: Path
    json_path: Path
    session_id: str
    mapping: dict = field(default_factory=dict)
    key_order: str = "animal-first"
    key_order_info: dict = field(default_factory=dict)
    done: set = field(default_factory=set)
    record: dict = field(default_factory=dict)
    #: The whole rows already in the CSV (practice rounds are counted from them).
    rows: list = field(default_factory=list)

    def save(self) -> None:
        """Rewrite the session JSON atomically."""
        atomic_write_text(self.json_path, json.dumps(self.record, indent=2, default=str) + "\n")


def list_digest(path: Path) -> str:
    """SHA-256 of the list file's bytes, so a resumed session provably runs the same list."""
    return file_sha256(path)


def session_columns(csv_path: Path) -> tuple[str, ...]:
    """The columns a session CSV is written with: the lab's (trial table + stimulus_deg,
    practice_round), or the bare trial table for a session begun before they were added
    (resumed as it began, so its rows keep one header)."""
    if csv_path.exists() and csv_path.stat().st_size:
        with open(csv_path, encoding="utf-8", newline="") as fh:
            header = tuple(fh.readline().rstrip("\r\n").split(","))
        if header == TRIAL_COLUMNS:
            return TRIAL_COLUMNS
    return LAB_TRIAL_COLUMNS


def _done_rows(csv_path: Path) -> list[dict]:
    """Whole rows already in a session CSV; a last row a crash cut short is not done."""
    if not csv_path.exists() or b"\n" not in csv_path.read_bytes():
        return []
    return read_rows(csv_path, required=TRIAL_COLUMNS, drop_unterminated=True)


def open_session(out_dir: Path, participant: str, list_path: Path, rows: list[dict],
                 keys: tuple[str, str], key_order: str, started_utc: str) -> Session:
    """Find or start participant's session; refuse one from another list or key mapping.

    A new session with ``key_order`` auto takes the key order fewer sessions in ``out_dir``
    used; a resumed one keeps the order it started with.
    """
    out_dir = Path(out_dir)
    csv_path = out_dir / f"sub-{participant}.csv"
    json_path = csv_path.with_suffix(".json")
    list_id = rows[0]["list_id"]
    record: dict = {}
    if json_path.exists():
        try:
            record = json.loads(json_path.read_text(encoding="utf-8"))
            if not isinstance(record, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as err:
            raise InputError(f"{json_path}: unreadable session record ({err}); "
                             "move it aside or use another --out") from None
    done_rows = _done_rows(csv_path)
    other = {r["list_id"] for r in done_rows} - {list_id}
    if record.get("list_id", list_id) != list_id or other:
        theirs = record.get("list_id") or sorted(other)[0]
        raise InputError(f"{csv_path}: participant {participant} already has a session on list "
                         f"{theirs}, not {list_id}; use a new participant id or another --out "
                         "(nothing was overwritten)")
    if record and record.get("list_sha256") not in (None, list_digest(list_path)):
        raise InputError(f"{list_path}: differs from the list participant {participant} started "
                         f"(recorded in {json_path}); resume with the original list file")
    recorded = record.get("key_mapping")
    if record and key_order == "auto":
        # Resuming: keep the order this session started with.
        order = record.get("key_order") or (
            "animal-first" if recorded and recorded.get("animal") == keys[0] else "animal-second")
        info = {}
    elif key_order == "auto":
        check_distinct_id(out_dir, participant)
        order, info = balanced_key_order(out_dir, participant)
    else:
        if not record:
            check_distinct_id(out_dir, participant)
        order, info = key_order, {"rule": f"--key-order {key_order}"}
    mapping = key_mapping(keys, order)
    if recorded and recorded != mapping:
        raise InputError(f"{json_path}: participant {participant} started with keys "
                         f"{recorded}, now {mapping}; resume with the same --keys/--key-order")
    session_id = record.get("session_id") or (done_rows[0]["session_id"] if done_rows else
                                              f"{participant}_{list_id}_{started_utc}")
    done = {trial_key(r) for r in done_rows}
    return Session(csv_path, json_path, session_id, mapping, order, info, done, record, done_rows)
