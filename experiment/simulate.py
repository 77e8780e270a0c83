"""A simulated psychometric observer that answers a trial list and writes trial-table rows.

Accuracy follows ``guess + (1 - guess - lapse) * logistic(slope * (log10 p - log10 threshold))``
with ``p`` the % of important pixels revealed; the full-image condition counts as
``full_percent``. RTs are ex-Gaussian (normal + exponential, ms from stimulus onset); an RT
past the 550 ms window is a timeout, scored incorrect like the lab runner does.

The command names each simulated observer after the list it answered
(``sim-001-list-03``, with ``-01``, ``-02``, … for ``--repeats``), so observers simulated
on several lists and pooled into one table stay separate people in the analysis.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from experiment.paradigm import TrialTiming
from experiment.schema import TRIAL_LIST_COLUMNS, read_rows, write_table
from suite.atomic import atomic_write_text
from suite.cli_types import int_at_least
from suite.errors import InputError
from suite.outputs import check_output_file
from suite.provenance import provenance, utc_now

RESPONSE_WINDOW_MS = TrialTiming().window_ms  # 400 ms image + 150 ms more (paradigm §1)


@dataclass(frozen=True)
class PsychometricObserver:
    """Observer parameters.

    Threshold in % revealed, slope per log10 %, rates, ex-Gaussian RT (ms).
    """

    threshold: float = 10.0
    slope: float = 3.0
    guess: float = 0.5
    lapse: float = 0.02
    rt_mu: float = 380.0
    rt_sigma: float = 50.0
    rt_tau: float = 60.0
    p_no_response: float = 0.0
    full_percent: float = 100.0

    def __post_init__(self):
        checks = {
            "threshold": self.threshold > 0, "slope": self.slope > 0,
            "guess": 0 <= self.guess < 1, "lapse": 0 <= self.lapse < 1 - self.guess,
            "rt_sigma": self.rt_sigma >= 0, "rt_tau": self.rt_tau >= 0,
            "p_no_response": 0 <= self.p_no_response <= 1, "full_percent": self.full_percent > 0,
        }
        bad = [k for k, ok in checks.items() if not ok]
        if bad:
            raise InputError(f"observer parameter(s) out of range: "
                             f"{', '.join(f'{k}={getattr(self, k)}' for k in bad)}")

    def p_correct(self, percent: np.ndarray) -> np.ndarray:
        """Probability correct at ``percent`` revealed (any shape, % in (0, 100])."""
        x = np.log10(np.asarray(percent, dtype=float)) - math.log10(self.threshold)
        return self.guess + (1 - self.guess - self.lapse) / (1 + np.exp(-self.slope * x))


def _percents(rows: list[dict], observer: PsychometricObserver) -> np.ndarray:
    cells = [r["level_percent"] for r in rows]
    try:
        return np.array([observer.full_percent if c in ("", None) else float(c) for c in cells])
    except ValueError as err:
        raise InputError(f"trial list: level_percent must be a number or empty ({err})") from None


def simulate_observer(trial_list_rows: list[dict], observer: PsychometricObserver,
                      rng: np.random.Generator, observer_id: str = "sim-001",
                      session_id: str | None = None) -> list[dict]:
    """Answer each trial-list row; returns trial-table rows.

    The rows have observer_type simulated, runner simulation.
    """
    n = len(trial_list_rows)
    if n == 0:
        return []
    percents = _percents(trial_list_rows, observer)
    is_animal = np.array([r["category"] == "animal" for r in trial_list_rows])
    right = rng.random(n) < observer.p_correct(percents)
    says_animal = np.where(right, is_animal, ~is_animal)
    rt = rng.normal(observer.rt_mu, observer.rt_sigma, n) + rng.exponential(observer.rt_tau, n) \
        if observer.rt_tau > 0 else rng.normal(observer.rt_mu, observer.rt_sigma, n)
    rt = np.maximum(rt, 1.0)  # a key press cannot precede the image
    silent = rng.random(n) < observer.p_no_response
    timeout = silent | (rt > RESPONSE_WINDOW_MS)
    session_id = session_id or f"{observer_id}-{trial_list_rows[0].get('list_id', '')}"
    stamp = utc_now()
    out = []
    for i, r in enumerate(trial_list_rows):
        response = "none" if silent[i] else ("animal" if says_animal[i] else "non-animal")
        out.append({
            "observer_id": observer_id, "observer_type": "simulated", "runner": "simulation",
            "session_id": session_id, "list_id": r.get("list_id"), "block": r.get("block"),
            "trial": r.get("trial"), "practice": r.get("practice"),
            "stimulus_id": r.get("stimulus_id"), "image_id": r.get("image_id"),
            "category": r["category"], "level_index": r.get("level_index"),
            "level_percent": r.get("level_percent"), "response": response,
            "correct": int(bool(right[i]) and not timeout[i]),
            "rt_ms": None if silent[i] else round(float(rt[i]), 1),
            "timeout": int(timeout[i]), "timestamp_utc": stamp,
        })
    return out


def observer_ids(prefix: str, list_id: str, repeats: int) -> list[str]:
    """Ids of the observers simulated on one list: ``PREFIX-LIST`` (``-01``, ``-02``… with repeats).

    The list id is part of the id so that tables simulated on different lists, pooled for
    the analysis, never merge two simulated people into one observer.
    """
    base = f"{prefix}-{list_id}"
    return [base] if repeats == 1 else [f"{base}-{k + 1:02d}" for k in range(repeats)]


def add_arguments(parser) -> None:
    d = PsychometricObserver()
    parser.add_argument("--list", required=True, metavar="FILE", help="trial list CSV")
    parser.add_argument("--out", required=True, metavar="TRIALS_CSV",
                        help="output file: the trial table (its provenance goes beside it "
                             "as .json)")
    parser.add_argument("--observer-id", default="sim-001",
                        help="observer id prefix; the list id is appended (sim-001-list-01)")
    parser.add_argument("--seed", type=int_at_least(0), default=0, help="random seed (default 0)")
    parser.add_argument("--repeats", type=int_at_least(1), default=1,
                        help="answer the list this many times (observer ids get -01, -02, …)")
    for name, value in asdict(d).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=float, default=value,
                            help=f"default {value}")


def main(args) -> int:
    path = Path(args.list)
    out = check_output_file(args.out, inputs=[path])
    record_path = out.with_suffix(".json")
    if record_path.resolve() == out.resolve():
        raise InputError(f"{out}: the provenance is written beside the table as "
                         f"{record_path.name}; give --out another suffix (e.g. .csv)")
    check_output_file(record_path, inputs=[path], option="--out (its provenance .json)")
    rows = read_rows(path, required=TRIAL_LIST_COLUMNS)
    if not rows:
        raise InputError(f"{path}: trial list has no trials; "
                         "write it with `python -m experiment lists`")
    list_ids = sorted({r["list_id"] for r in rows})
    if len(list_ids) != 1:
        raise InputError(f"{path}: rows from several lists {list_ids}; give one list per file")
    list_id = list_ids[0] or path.stem
    observer = PsychometricObserver(**{k: getattr(args, k) for k in asdict(PsychometricObserver())})
    rng = np.random.default_rng(args.seed)
    table = []
    for oid in observer_ids(args.observer_id, list_id, args.repeats):
        table += simulate_observer(rows, observer, rng, observer_id=oid, session_id=oid)
    write_table(out, table)
    record = provenance(list=str(path), seed=args.seed, repeats=args.repeats,
                        observer=asdict(observer))
    atomic_write_text(record_path, json.dumps(record, indent=2) + "\n")
    print(f"wrote {len(table)} simulated trials to {out}")
    return 0
