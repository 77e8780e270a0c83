"""A lab session's files and rules, checked before any window opens: list, keys, resume.

Files for participant P live in ``OUT/sub-P.csv`` (trial table, one row appended and
fsynced per trial) and ``OUT/sub-P.json`` (participant, list, key mapping, screen,
refresh, frame statistics, one entry per start). A rerun with the same list resumes at the
first trial not in the CSV; a rerun with another list or another key mapping is refused.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from experiment.schema import TRIAL_COLUMNS, TRIAL_LIST_COLUMNS, read_rows
from stimuli.atomic import atomic_write_text
from stimuli.errors import InputError
from stimuli.provenance import file_sha256
from stimuli.schema import CATEGORIES

# Key names psychtoolbox and PsychoPy's keyboard both report; escape is reserved for quitting.
KNOWN_KEYS = frozenset(
    [chr(c) for c in range(ord("a"), ord("z") + 1)] + [str(d) for d in range(10)]
    + ["left", "right", "up", "down", "space", "return", "slash", "backslash", "comma",
       "period", "semicolon", "lshift", "rshift", "lctrl", "rctrl"]
)
_PARTICIPANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


def trial_key(row: dict) -> tuple[int, int]:
    """Identity of a trial within a list: (practice flag, trial number)."""
    return int(row["practice"]), int(row["trial"])


def load_trial_list(path: str | Path) -> list[dict]:
    """Read a trial list and check it: one list id, unique trials, known categories, files on disk."""
    path = Path(path)
    rows = read_rows(path, required=TRIAL_LIST_COLUMNS)
    if not rows:
        raise InputError(f"{path}: the trial list has no trials; write it with `python -m experiment lists`")
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


def check_participant(participant: str) -> str:
    """Return the id if it is safe as a file name, else raise InputError."""
    if not _PARTICIPANT.match(participant):
        raise InputError(f"--participant {participant!r}: use 1-64 letters, digits, '-' or '_'")
    return participant


def key_mapping(participant: str, keys: tuple[str, str], order: str = "auto") -> dict[str, str]:
    """Map categories to keys; ``auto`` counterbalances by participant (odd number/hash: first key = animal)."""
    if len(keys) != 2 or keys[0] == keys[1]:
        raise InputError(f"--keys {','.join(keys)}: give two different keys, e.g. --keys f,j")
    unknown = [k for k in keys if k not in KNOWN_KEYS]
    if unknown:
        raise InputError(f"--keys: unknown key name(s) {unknown}; use e.g. a-z, 0-9, left, right, space")
    if order == "auto":
        # Numeric ids alternate exactly (1, 3, 5… vs 2, 4, 6…); other ids by SHA-256 parity.
        number = int(participant) if participant.isdigit() else \
            hashlib.sha256(participant.encode()).digest()[0]
        order = "animal-first" if number % 2 == 1 else "animal-second"
    if order not in ("animal-first", "animal-second"):
        raise InputError(f"--key-order {order!r}: use auto, animal-first or animal-second")
    first, second = keys if order == "animal-first" else keys[::-1]
    return {"animal": first, "non-animal": second}


@dataclass
class Session:
    """Where a participant's session stands: file paths, trials done, the stored record."""

    csv_path: Path
    json_path: Path
    session_id: str
    done: set = field(default_factory=set)
    record: dict = field(default_factory=dict)

    def save(self) -> None:
        """Rewrite the session JSON atomically."""
        atomic_write_text(self.json_path, json.dumps(self.record, indent=2, default=str) + "\n")


def list_digest(path: Path) -> str:
    """SHA-256 of the list file's bytes, so a resumed session provably runs the same list."""
    return file_sha256(path)


def open_session(out_dir: Path, participant: str, list_path: Path, rows: list[dict],
                 mapping: dict[str, str], started_utc: str) -> Session:
    """Find or start participant's session; refuse one from another list or key mapping."""
    csv_path = Path(out_dir) / f"sub-{participant}.csv"
    json_path = csv_path.with_suffix(".json")
    list_id = rows[0]["list_id"]
    record: dict = {}
    if json_path.exists():
        try:
            record = json.loads(json_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise InputError(f"{json_path}: unreadable session record ({err}); "
                             "move it aside or use another --out") from None
    done_rows = read_rows(csv_path, required=TRIAL_COLUMNS) if csv_path.exists() \
        and csv_path.stat().st_size else []
    other = {r["list_id"] for r in done_rows} - {list_id}
    if record.get("list_id", list_id) != list_id or other:
        theirs = record.get("list_id") or sorted(other)[0]
        raise InputError(f"{csv_path}: participant {participant} already has a session on list "
                         f"{theirs}, not {list_id}; use a new participant id or another --out "
                         "(nothing was overwritten)")
    if record and record.get("list_sha256") not in (None, list_digest(list_path)):
        raise InputError(f"{list_path}: differs from the list participant {participant} started "
                         f"(recorded in {json_path}); resume with the original list file")
    if record and record.get("key_mapping", mapping) != mapping:
        raise InputError(f"{json_path}: participant {participant} started with keys "
                         f"{record['key_mapping']}, now {mapping}; resume with the same --keys/--key-order")
    session_id = record.get("session_id") or (done_rows[0]["session_id"] if done_rows else
                                              f"{participant}_{list_id}_{started_utc}")
    done = {trial_key(r) for r in done_rows}
    return Session(csv_path, json_path, session_id, done, record)
