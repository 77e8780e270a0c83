"""Counterbalanced trial lists from a stimulus set.

Latin square over levels, capped runs, blocks, practice.

List ``k`` (0-based) shows image ``i`` at level ``(i + k) % n_levels`` (paradigm §1), so across
``n_levels`` lists every image appears at every level once. Images are indexed animals
first, then non-animals, so consecutive indices cycle through the levels and each category
is spread evenly over the levels of every list. The ``file`` column of a list is the
stimulus path relative to the folder holding the list CSV; ``sha256`` (a column added to
paradigm §4's, copied from the set's manifest) lets the lab runner and the site builder check
each stimulus file before showing it.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from experiment.schema import TRIAL_LIST_COLUMNS, write_table
from stimuli.manifest import read_stimulus_rows
from stimuli.schema import CATEGORIES
from suite.atomic import atomic_write_text
from suite.cli_types import int_at_least
from suite.errors import InputError
from suite.outputs import building_folder, check_output_folder
from suite.provenance import provenance

#: The columns of a list CSV: paradigm §4's trial-list columns plus the stimulus file's sha256.
LIST_COLUMNS = (*TRIAL_LIST_COLUMNS, "sha256")


@dataclass(frozen=True)
class ListConfig:
    """How lists are cut from a stimulus set; saved in lists.json beside the CSVs."""

    seed: int = 0
    blocks: int = 5
    max_run: int = 3  # at most this many same-category trials in a row
    n_practice: int = 10


@dataclass(frozen=True)
class StimulusSet:
    """A stimulus set read from its manifest: rows, level count and folder."""

    folder: Path
    rows: tuple[dict, ...]
    n_levels: int
    images: tuple[tuple[str, str], ...]  # (image_id, category), animals first, each sorted


def read_stimulus_set(folder: str | os.PathLike) -> StimulusSet:
    """Read and check ``folder/manifest.csv``: every image at every level exactly once."""
    folder = Path(folder)
    manifest, rows = read_stimulus_rows(folder)
    try:
        levels = sorted({int(r["level_index"]) for r in rows})
    except ValueError as err:
        raise InputError(f"{manifest}: level_index must be an integer ({err}); "
                         "rebuild the set") from None
    if levels != list(range(len(levels))):
        raise InputError(f"{manifest}: level_index values {levels} are not 0..n-1; rebuild the set")
    by_image: dict[str, dict] = {}
    for r in rows:
        if r["category"] not in CATEGORIES:
            raise InputError(f"{manifest}: category {r['category']!r} of {r['stimulus_id']} "
                             f"is not one of {CATEGORIES}; fix the manifest")
        entry = by_image.setdefault(r["image_id"], {"category": r["category"], "levels": []})
        if entry["category"] != r["category"]:
            raise InputError(f"{manifest}: image {r['image_id']} has two categories; "
                             "fix the manifest")
        entry["levels"].append(int(r["level_index"]))
    for image_id, entry in by_image.items():
        if sorted(entry["levels"]) != levels:
            raise InputError(f"{manifest}: image {image_id} has levels {sorted(entry['levels'])}, "
                             f"expected each of {levels} once; rebuild the set")
    images = tuple(sorted(((i, e["category"]) for i, e in by_image.items()),
                          key=lambda t: (CATEGORIES.index(t[1]), t[0])))
    return StimulusSet(folder, tuple(rows), len(levels), images)


def latin_square_levels(n_images: int, n_levels: int, list_index: int) -> np.ndarray:
    """Level index of each image in list ``list_index``: ``(i + k) % n_levels``.

    Shape (n_images,).
    """
    return (np.arange(n_images) + list_index) % n_levels


def effective_run_cap(categories: list[str], max_run: int) -> int:
    """The tightest same-category run cap the category counts allow, never below ``max_run``."""
    counts = [categories.count(c) for c in CATEGORIES]
    major, minor = max(counts), min(counts)
    # The majority category needs minor + 1 gaps; runs of ceil(major / (minor + 1)) are unavoidable.
    return max(max_run, math.ceil(major / (minor + 1)))


def capped_order(categories: list[str], max_run: int, rng: np.random.Generator) -> list[int]:
    """A random order of ``range(len(categories))``.

    No same-category run is longer than ``max_run``.
    """
    pools = {c: [i for i, x in enumerate(categories) if x == c] for c in CATEGORIES}
    for c in pools:
        rng.shuffle(pools[c])
    for _ in range(1000):
        left = {c: list(p) for c, p in pools.items()}
        order, run_cat, run_len = [], None, 0
        while any(left.values()):
            allowed = [c for c in CATEGORIES
                       if left[c] and not (c == run_cat and run_len >= max_run)]
            if not allowed:
                break
            # Drawing in proportion to what is left keeps the two categories from piling up
            # at the end.
            weights = np.array([len(left[c]) for c in allowed], dtype=float)
            c = allowed[rng.choice(len(allowed), p=weights / weights.sum())]
            order.append(left[c].pop())
            run_len = run_len + 1 if c == run_cat else 1
            run_cat = c
        if len(order) == len(categories):
            return order
    raise RuntimeError(f"no order with runs <= {max_run} found for {len(categories)} trials")


def _row(list_id, block, trial, practice, stim, list_dir: Path, set_dir: Path) -> dict:
    path = os.path.relpath(set_dir / stim["file"], list_dir)
    return {"list_id": list_id, "block": block, "trial": trial, "practice": int(practice),
            "stimulus_id": stim["stimulus_id"], "file": Path(path).as_posix(),
            "image_id": stim["image_id"], "category": stim["category"],
            "level_index": stim["level_index"], "level_percent": stim["level_percent"],
            "sha256": stim["sha256"]}


def practice_rows(practice: StimulusSet, n: int, test_images: set[str], list_id: str,
                  list_dir: Path, rng: np.random.Generator) -> list[dict]:
    """``n`` practice trials (block 0) from another set.

    Categories alternate, levels spread evenly.
    """
    overlap = sorted(test_images & {i for i, _ in practice.images})
    if overlap:
        raise InputError(f"{practice.folder}: practice images {overlap[:5]} are also test images; "
                         "build the practice set from other images")
    pools = {c: [i for i, cat in practice.images if cat == c] for c in CATEGORIES}
    picked = []
    for j in range(n):
        c = CATEGORIES[j % 2] if pools[CATEGORIES[j % 2]] else CATEGORIES[(j + 1) % 2]
        if not pools[c]:
            raise InputError(f"{practice.folder}: only {len(practice.images)} practice images for "
                             f"{n} practice trials; build more or lower --practice")
        picked.append(pools[c].pop(int(rng.integers(len(pools[c])))))
    # Practice spans the level range evenly so the participant meets easy and hard trials.
    levels = np.round(np.linspace(practice.n_levels - 1, 0, n)).astype(int) if n else []
    by_key = {(r["image_id"], int(r["level_index"])): r for r in practice.rows}
    order = rng.permutation(n)
    return [_row(list_id, 0, t + 1, True, by_key[(picked[o], int(levels[o]))], list_dir,
                 practice.folder) for t, o in enumerate(order)]


def make_lists(stimuli: StimulusSet, config: ListConfig, list_dir: Path,
               practice: StimulusSet | None = None) -> dict[str, list[dict]]:
    """All ``n_levels`` trial lists as {list_id: rows} in paradigm §4 trial-list columns."""
    by_key = {(r["image_id"], int(r["level_index"])): r for r in stimuli.rows}
    categories = [c for _, c in stimuli.images]
    cap = effective_run_cap(categories, config.max_run)
    n = len(stimuli.images)
    if config.blocks < 1 or config.blocks > n:
        raise InputError(f"--blocks {config.blocks}: must be between 1 and the {n} images "
                         "of the set")
    out = {}
    for k in range(stimuli.n_levels):
        list_id = f"list-{k + 1:02d}"
        rng = np.random.default_rng([config.seed, k])
        levels = latin_square_levels(n, stimuli.n_levels, k)
        order = capped_order(categories, cap, rng)
        block_of = np.repeat(np.arange(1, config.blocks + 1),
                             [len(b) for b in np.array_split(np.arange(n), config.blocks)])
        rows = []
        if practice is not None and config.n_practice:
            rows += practice_rows(practice, config.n_practice, {i for i, _ in stimuli.images},
                                  list_id, list_dir, rng)
        for t, i in enumerate(order):
            stim = by_key[(stimuli.images[i][0], int(levels[i]))]
            rows.append(_row(list_id, int(block_of[t]), t + 1, False, stim, list_dir,
                             stimuli.folder))
        out[list_id] = rows
    return out


def write_lists(stimuli_dir, out_dir, config: ListConfig = ListConfig(),
                practice_dir=None, overwrite: bool = False) -> list[Path]:
    """Write one CSV per list plus lists.json (provenance) into ``out_dir``; returns the CSV paths.

    The folder is built aside and swapped in whole on success, so an older set of lists
    (perhaps with more lists than this one) never survives next to the new one. A
    non-empty ``out_dir`` is refused unless ``overwrite`` (and then only one the suite made).
    """
    check_output_folder(out_dir, inputs=[p for p in (stimuli_dir, practice_dir) if p],
                        overwrite=overwrite)
    out_dir = Path(out_dir).resolve()
    stimuli = read_stimulus_set(Path(stimuli_dir).resolve())
    practice = read_stimulus_set(Path(practice_dir).resolve()) if practice_dir else None
    lists = make_lists(stimuli, config, out_dir, practice)
    categories = [c for _, c in stimuli.images]
    record = provenance(**asdict(config), stimuli=str(stimuli.folder),
                        practice_stimuli=str(practice.folder) if practice else None)
    record["lists"] = {list_id: {"file": f"{list_id}.csv",
                                 "trials": sum(not r["practice"] for r in rows),
                                 "practice_trials": sum(r["practice"] for r in rows)}
                       for list_id, rows in lists.items()}
    record["n_levels"] = stimuli.n_levels
    record["n_images"] = len(stimuli.images)
    record["max_run_used"] = effective_run_cap(categories, config.max_run)
    with building_folder(out_dir, "experiment lists") as tmp:
        for list_id, rows in lists.items():
            write_table(tmp / f"{list_id}.csv", rows, LIST_COLUMNS)
        atomic_write_text(tmp / "lists.json", json.dumps(record, indent=2) + "\n")
    return [out_dir / f"{list_id}.csv" for list_id in lists]


def add_arguments(parser) -> None:
    parser.add_argument("--stimuli", required=True, metavar="SET_DIR",
                        help="stimulus set folder (manifest.csv)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="output folder for list-NN.csv and lists.json")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a lists folder this suite wrote before (wholesale)")
    parser.add_argument("--seed", type=int_at_least(0), default=ListConfig.seed,
                        help="shuffle seed (default 0)")
    parser.add_argument("--blocks", type=int_at_least(1), default=ListConfig.blocks,
                        help="blocks per list (default 5)")
    parser.add_argument("--max-run", type=int_at_least(1), default=ListConfig.max_run,
                        help="longest same-category run (default 3; raised only if the counts "
                             "force it)")
    parser.add_argument("--practice-stimuli", metavar="SET_DIR", default=None,
                        help="stimulus set built from images NOT in the test set, for practice "
                             "trials")
    parser.add_argument("--practice", type=int_at_least(0), default=ListConfig.n_practice,
                        help="practice trials per list when --practice-stimuli is given "
                             "(default 10)")


def main(args) -> int:
    config = ListConfig(seed=args.seed, blocks=args.blocks, max_run=args.max_run,
                        n_practice=args.practice)
    paths = write_lists(args.stimuli, args.out, config, args.practice_stimuli,
                        overwrite=args.overwrite)
    note = "" if args.practice_stimuli else " (no practice trials: pass --practice-stimuli)"
    print(f"wrote {len(paths)} lists to {Path(args.out)}{note}")
    return 0
