"""What was run, in numbers, and a methods paragraph ready to edit into a paper.

``study_facts`` gathers every number from the inputs (trials before and after exclusions,
the exclusion report, the stimulus set when given, analysis settings, versions);
``overview_rows`` turns them into the report's "What was run" table and ``methods_text``
into prose (also written as ``methods.md``). Nothing here is estimated: each number is a
count or summary of the given rows, so tests compare them with the inputs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.align import MSE_FLOOR
from analysis.exclusions import ExclusionReport, _reason_text
from analysis.where_results import maps_are_human
from suite.errors import InputError

PEOPLE = {"human": ("participant", "participants"),
          "simulated": ("SIMULATED participant (not a person)",
                        "SIMULATED participants (not people)")}


def read_stimulus_set(folder) -> dict:
    """The facts of a stimulus set folder's ``stimulus_set.json`` the report states."""
    path = Path(folder) / "stimulus_set.json"
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: not found; --stimuli takes a stimulus set folder made by "
                         "python -m stimuli build") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: cannot read ({err}); rebuild the set") from None
    config = info.get("config") if isinstance(info.get("config"), dict) else {}
    return {"folder": str(folder), "n_images": info.get("n_images"),
            "n_animal": info.get("n_animal"), "n_non_animal": info.get("n_non_animal"),
            "n_stimuli": info.get("n_stimuli"), "maps": info.get("importance_maps", ""),
            "levels_percent": config.get("levels_percent"), "full": config.get("full"),
            "order": config.get("order"), "budget": config.get("budget"),
            "size": config.get("size")}


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def _timing(people: pd.DataFrame) -> list[dict]:
    """Per runner (lab, web): refresh rate, stimulus frames and drops as measured per trial."""
    out = []
    for runner, rows in people.groupby("runner", sort=True):
        if runner not in ("lab", "web"):
            continue
        hz = pd.to_numeric(rows.get("refresh_hz"), errors="coerce").dropna()
        intended = pd.to_numeric(rows.get("frames_intended"), errors="coerce")
        shown = pd.to_numeric(rows.get("frames_shown"), errors="coerce")
        dropped = pd.to_numeric(rows.get("dropped_frames"), errors="coerce")
        known = intended.notna() & shown.notna()
        entry = {"runner": runner, "trials": len(rows), "trials_timed": int(hz.size)}
        if hz.size:
            entry.update(refresh_hz_median=float(hz.median()), refresh_hz_min=float(hz.min()),
                         refresh_hz_max=float(hz.max()))
            ms = (intended / pd.to_numeric(rows["refresh_hz"], errors="coerce") * 1000).dropna()
            if ms.size:
                entry["stimulus_ms_median"] = float(ms.median())
        if known.any():
            entry.update(frames_mismatched=int((intended[known] != shown[known]).sum()),
                         trials_with_frames=int(known.sum()))
        if dropped.notna().any():
            entry.update(dropped_total=int(dropped.sum()),
                         trials_with_drops=int((dropped > 0).sum()),
                         trials_with_drop_counts=int(dropped.notna().sum()))
        out.append(entry)
    return out


def study_facts(trials: pd.DataFrame, kept: pd.DataFrame, excl: ExclusionReport, *,
                stimulus_set: dict | None = None, n_boot: int, normalization: str,
                versions: dict, git_revision: str | None = None, models_acc=None,
                where=None) -> dict:
    """Every number the overview and the methods paragraph state, from the inputs."""
    obs = excl.observers
    people = obs[obs["observer_type"] != "model"]
    groups = {}
    for kind in ("human", "simulated"):
        rows = people[people["observer_type"] == kind]
        if rows.empty:
            continue
        reasons: dict[str, int] = {}
        for r in rows.loc[rows["excluded"], "reasons"]:
            for reason in r.split("; "):
                reasons[reason] = reasons.get(reason, 0) + 1
        kept_rows = kept[kept["observer_type"] == kind]
        per = kept_rows.groupby(["dataset", "observer_id"]).size()
        groups[kind] = {"recruited": int(len(rows)), "excluded": int(rows["excluded"].sum()),
                        "kept": int((~rows["excluded"]).sum()), "reasons": reasons,
                        "runners": sorted(set(trials.loc[trials["observer_type"] == kind,
                                                         "runner"].dropna().astype(str))),
                        "trials_kept": int(len(kept_rows)),
                        "trials_per_person_median": float(per.median()) if len(per) else 0.0,
                        "trials_per_person_min": int(per.min()) if len(per) else 0,
                        "trials_per_person_max": int(per.max()) if len(per) else 0,
                        "lists": int(kept_rows["list_id"].nunique())
                        if "list_id" in kept_rows else 0}
    main = trials[trials["practice"].fillna(0) == 0] if "practice" in trials else trials
    levels = sorted(float(v) for v in pd.unique(main["level"].dropna()))
    models = list(pd.unique(kept.loc[kept["observer_type"] == "model", "model_name"]))
    person_rows = trials[trials["observer_type"] != "model"]
    rts = pd.to_numeric(kept.loc[kept["observer_type"] != "model", "rt_ms"], errors="coerce")
    facts = {
        "groups": groups,
        "datasets": list(pd.unique(kept["dataset"])),
        "trials_total": int(len(trials)), "trials_kept": int(len(kept)),
        "trials_dropped": {k: int(v) for k, v in excl.trials_dropped.items()},
        "rules": excl.rules,
        "images": int(main["image_id"].nunique()),
        "levels": levels, "full_condition": bool(main["level"].isna().any()),
        "stimulus_set": stimulus_set,
        "models": models,
        "timing": _timing(person_rows),
        "rt_median_ms": float(rts.median()) if rts.notna().any() else None,
        "n_boot": int(n_boot), "normalization": normalization,
        "versions": dict(versions), "git_revision": git_revision,
        "n_accuracy": 0 if models_acc is None else int(len(models_acc)),
        "where": where,
    }
    maps = (stimulus_set or {}).get("maps", "")
    facts["maps"] = maps
    facts["maps_human"] = maps_are_human(maps)
    return facts


def _levels_text(levels: list[float]) -> str:
    if not levels:
        return "no graded levels"
    if len(levels) <= 4:
        return ", ".join(f"{v:.3g}" for v in levels)
    return f"{len(levels)} levels from {levels[0]:.3g} to {levels[-1]:.3g}"


def overview_rows(facts: dict) -> list[tuple[str, str]]:
    """The "What was run" table: (what, how many / which)."""
    rows = []
    for kind, g in facts["groups"].items():
        label = PEOPLE[kind][1]
        reasons = "; ".join(f"{n} for {_reason_text(r)} ({r})"
                            for r, n in g["reasons"].items()) or "none"
        rows.append((label.capitalize(), f"{g['recruited']} recruited, {g['excluded']} "
                     f"excluded, {g['kept']} analysed ({', '.join(g['runners']) or '?'} runner)"))
        rows.append(("Exclusions", reasons))
        rows.append(("Trials per participant (analysed)",
                     f"median {g['trials_per_person_median']:g} "
                     f"(range {g['trials_per_person_min']}–{g['trials_per_person_max']})"))
    d = facts["trials_dropped"]
    rows.append(("Trials", f"{facts['trials_kept']:,} analysed of {facts['trials_total']:,}; "
                 "dropped: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in d.items()
                                          if v) if any(d.values()) else
                 f"{facts['trials_kept']:,} analysed of {facts['trials_total']:,}"))
    s = facts["stimulus_set"]
    if s:
        rows.append(("Stimuli", f"{s['n_images']} images ({s['n_animal']} animal, "
                     f"{s['n_non_animal']} non-animal), {s['n_stimuli']} stimuli; "
                     f"{_levels_text(s['levels_percent'] or [])} % revealed"
                     f"{' + the full image' if s['full'] else ''}; order {s['order']}, "
                     f"budget {s['budget']} px ({s['folder']})"))
    else:
        rows.append(("Stimuli", f"{facts['images']} images in the trials; "
                     f"{_levels_text(facts['levels'])}"
                     f"{' + the full image' if facts['full_condition'] else ''}"))
    human = facts["maps_human"]
    rows.append(("Importance maps", facts["maps"] + (" — NOT from people" if human is False
                                                     else "") if facts["maps"] else
                 "not stated (give --stimuli SET to read the set's maps note)"))
    m = facts["models"]
    rows.append(("Models", f"{len(m)}" + (f": {', '.join(m)}" if 0 < len(m) <= 6 else "")))
    w = facts["where"]
    if w is not None:
        rows.append(("Where (feature alignment)", f"{len(w.models)} model(s) scored on "
                     f"{int(w.models['n_images'].iloc[0])} images"
                     + ("; centre-bias control" if w.control is not None else "")
                     + (f"; maps: {w.maps_note}" if w.maps_note else "")))
    return rows


def _timing_text(timing: list[dict]) -> str:
    parts = []
    for t in timing:
        where = "in the lab" if t["runner"] == "lab" else "online"
        if "refresh_hz_median" not in t:
            parts.append(f"{_count(t['trials'], 'trial')} {where} carry no measured timing.")
            continue
        lo, hi = t["refresh_hz_min"], t["refresh_hz_max"]
        rate = (f"{t['refresh_hz_median']:.4g} Hz" if lo == hi else
                f"a median of {t['refresh_hz_median']:.4g} Hz (range {lo:.4g}–{hi:.4g})")
        text = f"Displays {where} refreshed at {rate}"
        if "stimulus_ms_median" in t:
            text += f"; the image was scheduled for a median of {t['stimulus_ms_median']:.0f} ms"
        text += "."
        if "trials_with_drops" in t:
            n = t["trials_with_drop_counts"]
            text += (f" Dropped frames were recorded on {t['trials_with_drops']} of "
                     f"{_count(n, 'trial')} ({100 * t['trials_with_drops'] / n:.1f} %; "
                     f"{t['dropped_total']} frames in all)")
            if "frames_mismatched" in t:
                text += (f", and {t['frames_mismatched']} trial(s) showed a different number "
                         "of frames than intended")
            text += "."
        parts.append(text)
    return " ".join(parts)


def methods_text(facts: dict) -> str:
    """A methods section in Markdown (three paragraphs): participants and design, analysis,
    software. Every number comes from ``facts``."""
    paras = []
    people = []
    for kind, g in facts["groups"].items():
        one, many = PEOPLE[kind]
        text = f"{_count(g['recruited'], one, many)} took part"
        if g["excluded"]:
            why = "; ".join(f"{n} for {_reason_text(r)} ({r})" for r, n in g["reasons"].items())
            text += (f"; {g['excluded']} {'was' if g['excluded'] == 1 else 'were'} excluded "
                     f"({why}), leaving {g['kept']} for analysis")
        else:
            text += ", and none was excluded"
        people.append(text + ".")
    design = " ".join(people)
    s = facts["stimulus_set"]
    levels = s["levels_percent"] if s and s.get("levels_percent") else facts["levels"]
    full = (s["full"] if s and s.get("full") is not None else facts["full_condition"])
    n_images = s["n_images"] if s else facts["images"]
    design += (f" Stimuli were {n_images} images shown at {_levels_text(levels)} % of their "
               "pixels revealed" + (" or in full" if full else "") + ".")
    if s:
        design += (f" Pixels were revealed in order of importance ({s['order']}, a budget of "
                   f"{s['budget']} pixels at 100 %) using {s['maps'] or 'the supplied maps'}.")
    for kind, g in facts["groups"].items():
        design += (f" Each of the {g['kept']} analysed {PEOPLE[kind][1].split(' (')[0]} "
                   f"completed a median of {g['trials_per_person_median']:g} trials "
                   f"(range {g['trials_per_person_min']}–{g['trials_per_person_max']})")
        design += (f" on {g['lists']} Latin-square trial lists, each image once at one level."
                   if g["lists"] else ".")
    d = facts["trials_dropped"]
    r = facts["rules"]
    design += (f" Of {facts['trials_total']:,} trials, {facts['trials_kept']:,} were analysed "
               f"({d.get('practice', 0)} practice, {d.get('timeout', 0)} time-outs, "
               f"{d.get('too_fast', 0)} responses faster than {r.fast_rt_ms:g} ms and "
               f"{d.get('excluded_observers', 0)} trials of excluded participants removed).")
    if facts["rt_median_ms"] is not None:
        design += f" The median response time was {facts['rt_median_ms']:.0f} ms."
    timing = _timing_text(facts["timing"])
    if timing:
        design += " " + timing
    m = facts["models"]
    if m:
        design += (f" {_count(len(m), 'network')} "
                   + (f"({', '.join(m)}) " if len(m) <= 6 else "")
                   + "saw every stimulus; a network answered \"animal\" when its top-1 "
                   "ImageNet class was an animal class (indices 0–397).")
    paras.append(design)
    analysis = (
        "Accuracy per level was pooled over participants with Wilson 95 % intervals. Each "
        "observer's accuracy was fit by maximum likelihood with a logistic psychometric "
        "function of log10 % revealed, the guess rate fixed at chance (0.5) and the lapse "
        "rate bounded to [0, 0.2]; the threshold is the level halfway between chance and "
        f"1 − lapse, with 95 % intervals from {facts['n_boot']:,} bootstrap resamples of "
        "trials within observer and level. ")
    norm = ("chance-to-ceiling, (accuracy − 0.5)/(maximum − 0.5)"
            if facts["normalization"] == "chance" else
            "min–max over levels, (accuracy − minimum)/(maximum − minimum)")
    analysis += (
        f"Curves were normalized {norm}. A model's decision alignment is −log of the mean "
        f"squared difference between its normalized curve and the participants' pooled "
        "curve (the "
        f"MSE floored at {MSE_FLOOR:g}); correlation across levels, the ratio of fitted "
        "thresholds and error consistency (Cohen's κ per level) are reported too. Intervals "
        f"are 95 % percentile intervals of {facts['n_boot']:,} bootstrap resamples drawing "
        "participants, images and levels together.")
    w = facts["where"]
    if w is not None:
        c = w.models["ceiling"].iloc[0]
        analysis += (
            f" Feature alignment (where) is the mean over {int(w.models['n_images'].iloc[0])} "
            "images of Spearman's ρ between a model's gradient saliency and the blurred "
            f"human map, divided by the human ceiling {c:.3g} "
            f"({w.models['ceiling_source'].iloc[0]}); its SD is bootstrapped over images.")
        if w.control is not None:
            analysis += (" The centre-bias control scores each image's map against the mean "
                         "of the other images' maps.")
    paras.append(analysis)
    v = facts["versions"]
    names = ("python", "numpy", "scipy", "pandas", "statsmodels", "matplotlib", "torch", "timm")
    soft = ", ".join(f"{k} {v[k]}" for k in names if k in v)
    rev = f", git {facts['git_revision']}" if facts.get("git_revision") else ""
    paras.append(f"Analyses used the decision-curves suite {v.get('suite', '?')}{rev} "
                 f"({soft}).")
    return "\n\n".join(paras) + "\n"


def summary_numbers(facts: dict) -> dict:
    """The counts of ``facts`` as plain JSON (for provenance and tests)."""
    return json.loads(json.dumps({k: v for k, v in facts.items()
                                  if k not in ("rules", "where", "versions")},
                                 default=lambda o: o.item() if isinstance(o, np.generic)
                                 else str(o)))
