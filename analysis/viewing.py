"""The stimulus angle participants saw: ``stimulus_deg`` (paradigm §4, an optional column,
written by the lab runner and the web runner when the screen was calibrated).

One value per participant (the median of their trials; one session shows one angle, so it
is that angle), and one line for the report's "What was run": the angle, or its range across
participants, and how many have none recorded.
"""

from __future__ import annotations

import pandas as pd

KEY = ["dataset", "observer_type", "observer_id"]


def observer_angles(df: pd.DataFrame) -> pd.DataFrame:
    """Per participant (models left out): dataset, observer_type, observer_id, stimulus_deg
    (median over their trials; NaN when none recorded), and n_trials with an angle."""
    people = df[df["observer_type"] != "model"]
    deg = pd.to_numeric(people["stimulus_deg"], errors="coerce") if "stimulus_deg" in people \
        else pd.Series(float("nan"), index=people.index)
    grouped = people.assign(_deg=deg).groupby(KEY, sort=False)["_deg"]
    out = pd.DataFrame({"stimulus_deg": grouped.median(), "n_trials_with_angle": grouped.count()})
    return out.reset_index()


def viewing_summary(df: pd.DataFrame) -> dict:
    """Participants with and without a recorded angle, and the angles' min, median and max."""
    per = observer_angles(df)
    known = per["stimulus_deg"].dropna()
    return {"participants": len(per), "with_angle": int(known.size),
            "without_angle": int(len(per) - known.size),
            "min_deg": float(known.min()) if known.size else None,
            "median_deg": float(known.median()) if known.size else None,
            "max_deg": float(known.max()) if known.size else None}


def overview_rows(df: pd.DataFrame) -> list[tuple[str, str]]:
    """The report's "What was run" row for the stimulus size (none without participants)."""
    s = viewing_summary(df)
    if not s["participants"]:
        return []
    if not s["with_angle"]:
        return [("Stimulus size", "visual angle not recorded in the trial tables (no "
                 "stimulus_deg: the screen was not calibrated, or the data predate it)")]
    if round(s["min_deg"], 2) == round(s["max_deg"], 2):
        text = f"{s['min_deg']:.2f}° of visual angle for all {s['with_angle']} participant(s)"
    else:
        text = (f"{s['min_deg']:.2f}–{s['max_deg']:.2f}° of visual angle across "
                f"{s['with_angle']} participants (median {s['median_deg']:.2f}°)")
    if s["without_angle"]:
        text += f"; not recorded for {s['without_angle']}"
    return [("Stimulus size", text)]
