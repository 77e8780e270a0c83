"""Participant and trial exclusions, configurable and reported.

Trial rules drop practice trials, timeouts (unless counted as errors) and responses faster
than ``fast_rt_ms``. Observer rules (humans and simulated humans; models are exempt) drop
anyone whose accuracy on the easiest condition is ≤ ``min_top_accuracy`` (the 2017 rule:
the full image when the set has one, else the 100 % level — or the least degraded level of a
decreasing dataset), whose timeout fraction exceeds ``max_timeout_fraction``, or whose
too-fast fraction exceeds ``max_fast_fraction``, or — when ``stimulus_deg_range`` is set —
whose stimulus angle (``stimulus_deg``, the median of their trials) lies outside it or was not
recorded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from analysis.viewing import observer_angles
from suite.errors import InputError


@dataclass(frozen=True)
class ExclusionRules:
    """Thresholds of every exclusion rule; None switches a rule off."""

    min_top_accuracy: float | None = 0.5
    max_timeout_fraction: float | None = 0.2
    fast_rt_ms: float | None = 150.0
    max_fast_fraction: float | None = 0.1
    timeouts_as_errors: bool = False
    drop_practice: bool = True
    #: (low, high) in degrees of visual angle; participants outside it, or without a recorded
    #: angle, are excluded. None: off.
    stimulus_deg_range: tuple[float, float] | None = None

    def __post_init__(self):
        r = self.stimulus_deg_range
        if r is not None and not (len(r) == 2 and 0 < r[0] <= r[1]):
            raise InputError(f"stimulus-deg range {r}: give LOW HIGH degrees with "
                             "0 < LOW <= HIGH, e.g. 6 10")


@dataclass(frozen=True)
class ExclusionReport:
    """What the rules removed: one row per observer, and trial counts per reason."""

    rules: ExclusionRules
    observers: pd.DataFrame
    trials_dropped: dict

    @property
    def excluded(self) -> pd.DataFrame:
        """The observers that were excluded, with their reasons."""
        return self.observers[self.observers["excluded"]]

    def summary(self) -> dict:
        """A JSON-ready summary for provenance."""
        return {
            "rules": asdict(self.rules),
            "trials_dropped": {k: int(v) for k, v in self.trials_dropped.items()},
            "observers_excluded": [
                {"dataset": r.dataset, "observer_id": r.observer_id, "reasons": r.reasons}
                for r in self.excluded.itertuples()
            ],
            "observers_kept": int((~self.observers["excluded"]).sum()),
            "headline": self.headline(),
        }

    def headline(self) -> str:
        """One plain sentence: how many participants the rules excluded, and why."""
        people = self.observers[self.observers["observer_type"] != "model"]
        gone = people[people["excluded"]]
        if people.empty:
            return "No participants (model observers only); no one was excluded."
        if gone.empty:
            return f"No participants excluded: all {len(people)} passed the exclusion rules."
        counts: dict[str, int] = {}
        for reasons in gone["reasons"]:
            for reason in reasons.split("; "):
                counts[reason] = counts.get(reason, 0) + 1
        why = "; ".join(f"{n} for {_reason_text(r)} ({r})" for r, n in counts.items())
        text = (f"{len(gone)} of {len(people)} participants EXCLUDED and left out of every "
                f"curve, fit and score: {why}.")
        top = gone[gone["reasons"].str.contains("top accuracy")]
        if len(top):
            few = int(top["n_top_trials"].median())
            text += (f" Those excluded for accuracy had a median of {few} answered trial(s) on "
                     "the easiest condition")
            text += (", so a single error can exclude someone; loosen --min-top-accuracy or "
                     "add easy trials if that is not intended." if few <= 4 else ".")
        return text


#: Plain words for each rule's reason label (the label's first two words).
_REASON_TEXT = {"top accuracy": "low accuracy on the easiest condition (full images, else the "
                                "easiest level)",
                "timeouts >": "too many timeouts",
                "too fast": "too many responses faster than the fast-RT limit",
                "stimulus angle": "a stimulus angle outside the range asked for",
                "no stimulus": "no recorded stimulus angle (a range was asked for)"}


def _reason_text(label: str) -> str:
    return _REASON_TEXT.get(" ".join(label.split(" ")[:2]), label)


def _top_mask(df: pd.DataFrame) -> pd.Series:
    """Rows of each dataset's easiest condition: full images, else the top/bottom level."""
    full = df["level"].isna()
    top = pd.Series(False, index=df.index)
    for _, rows in df.groupby("dataset", sort=False):
        if full[rows.index].any():
            top[rows.index] = full[rows.index]
            continue
        increasing = bool(rows["increasing"].iloc[0])
        best = rows["level"].max() if increasing else rows["level"].min()
        top[rows.index] = rows["level"] == best
    return top


def apply_exclusions(df: pd.DataFrame, rules: ExclusionRules | None = None
                     ) -> tuple[pd.DataFrame, ExclusionReport]:
    """Apply ``rules`` to a trial table; return the kept trials and what was removed."""
    rules = rules or ExclusionRules()
    for col in ("dataset", "observer_id", "observer_type", "correct", "timeout", "rt_ms"):
        if col not in df:
            raise InputError(f"trial table lacks column {col!r}; load it with "
                             "analysis.load.load_trials")
    # web trials whose tab was hidden mid-trial (optional column): void, dropped before all else
    interrupted = pd.to_numeric(df["interrupted"], errors="coerce").fillna(0).astype(bool) \
        if "interrupted" in df else pd.Series(False, index=df.index)
    n_interrupted = int(interrupted.sum())
    df = df[~interrupted]
    key = ["dataset", "observer_type", "observer_id"]
    person = df["observer_type"] != "model"
    timeout = df["timeout"].fillna(0).astype(bool)
    practice = df["practice"].fillna(0).astype(bool) if rules.drop_practice \
        else pd.Series(False, index=df.index)
    fast = pd.Series(False, index=df.index)
    if rules.fast_rt_ms is not None:
        fast = person & ~timeout & (df["rt_ms"] < rules.fast_rt_ms)

    main = ~practice
    stats = df[main].assign(_timeout=timeout[main], _fast=fast[main],
                            _top=_top_mask(df[main]))
    grouped = stats.groupby(key, sort=False)
    per = pd.DataFrame({
        "n_trials": grouped.size(),
        "timeout_fraction": grouped["_timeout"].mean(),
        "fast_fraction": grouped["_fast"].mean(),
    })
    answered = stats[stats["_top"] & ~stats["_timeout"]]
    per["top_accuracy"] = answered.groupby(key, sort=False)["correct"].mean()
    per["n_top_trials"] = answered.groupby(key, sort=False).size()
    per["n_top_trials"] = per["n_top_trials"].fillna(0).astype(int)
    per = per.reset_index()
    if rules.stimulus_deg_range is not None:
        angles = observer_angles(df[main])
        per = per.merge(angles[[*key, "stimulus_deg"]], on=key, how="left")
    checks = [
        ("top accuracy ≤ {:g}", "top_accuracy", rules.min_top_accuracy,
         lambda v, t: v <= t),
        ("timeouts > {:g}", "timeout_fraction", rules.max_timeout_fraction,
         lambda v, t: v > t),
        ("too fast > {:g}", "fast_fraction", rules.max_fast_fraction,
         lambda v, t: v > t),
    ]
    reasons = [[] for _ in range(len(per))]
    is_person = (per["observer_type"] != "model").to_numpy()
    for label, col, limit, broken in checks:
        if limit is None:
            continue
        hit = broken(per[col].to_numpy(dtype=float), limit) & is_person
        for i in np.flatnonzero(hit):
            reasons[i].append(label.format(limit))
    if rules.stimulus_deg_range is not None:
        lo, hi = rules.stimulus_deg_range
        deg = per["stimulus_deg"].to_numpy(dtype=float)
        with np.errstate(invalid="ignore"):
            outside = (deg < lo) | (deg > hi)
        for i in np.flatnonzero(is_person & (outside | np.isnan(deg))):
            reasons[i].append("no stimulus angle recorded" if np.isnan(deg[i]) else
                              f"stimulus angle outside {lo:g}–{hi:g}°")
    per["reasons"] = ["; ".join(r) for r in reasons]
    per["excluded"] = per["reasons"] != ""

    gone = per.loc[per["excluded"], key]
    out_obs = df.set_index(key).index.isin(pd.MultiIndex.from_frame(gone)) if len(gone) \
        else np.zeros(len(df), dtype=bool)
    drop_timeout = timeout & ~rules.timeouts_as_errors
    keep = ~practice & ~fast & ~drop_timeout & ~out_obs
    dropped = {
        "practice": int(practice.sum()),
        "too_fast": int((fast & ~practice).sum()),
        "timeout": int((drop_timeout & ~practice & ~fast).sum()),
        "excluded_observers": int((out_obs & ~practice & ~fast & ~drop_timeout).sum()),
        "interrupted": n_interrupted,
    }
    kept = df[keep].copy()
    report = ExclusionReport(rules=rules, observers=per, trials_dropped=dropped)
    if kept.empty:
        raise InputError(f"exclusions removed every trial ({report.headline()}); loosen the "
                         f"rules ({asdict(rules)}) or check the trial tables")
    return kept, report
