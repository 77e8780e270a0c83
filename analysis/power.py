"""How many participants tell two models' decision-alignment scores apart? Power by simulation.

A simulated study: ``n`` participants (psychometric observers whose thresholds vary between
people) each see every image once, at one level (the Latin square, so ``n_images / L``
trials per level); two models with known decision curves. The study is analysed as a lab
would: pooled human curve, normalized, −log MSE against each normalized model curve, and a
bootstrap over participants of the score difference; the difference is "detected" when
its (1 − α) percentile interval excludes 0. Power is the detection rate over simulations
(``analysis.power_engine``).
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from analysis.align import MSE_FLOOR
from analysis.normalize import DEFAULT_METHOD, normalize
from analysis.power_engine import PowerPoint, SearchResult, search_n, simulate_power, smallest_n
from experiment.lists import latin_square_levels
from experiment.simulate import PsychometricObserver, simulate_observer
from stimuli.config import DEFAULT_LEVELS, log_spaced_levels
from suite.atomic import atomic_write_bytes, atomic_write_text
from suite.cli_types import float_in, int_at_least, int_in, list_item
from suite.errors import InputError
from suite.outputs import building_folder, check_output_folder
from suite.provenance import provenance

#: Fewest bootstrap resamples a simulated study may use (its interval needs the tails).
MIN_BOOT = 50


@dataclass(frozen=True)
class PowerDesign:
    """The simulated study: human population, two models, analysis settings."""

    levels_percent: tuple[float, ...] = DEFAULT_LEVELS
    n_images: int = 200
    human_threshold: float = 10.0        # % revealed at the curve's midpoint, population median
    human_threshold_sd: float = 0.15     # between-participant sd of log10 threshold
    human_slope: float = 3.0             # per log10 %
    human_lapse: float = 0.05
    model_a_threshold: float = 10.0      # model A: humans' median threshold (well aligned)
    model_b_threshold: float = 14.0      # model B: needs more revealed pixels
    model_slope: float = 3.0
    model_lapse: float = 0.0
    normalization: str = DEFAULT_METHOD
    alpha: float = 0.05
    n_boot: int = 400

    def __post_init__(self):
        if self.n_images < len(self.levels_percent):
            raise InputError(f"n_images {self.n_images} < number of levels "
                             f"{len(self.levels_percent)}: each participant needs ≥1 image "
                             "per level")
        if len(self.levels_percent) < 2:
            raise InputError(f"{len(self.levels_percent)} level(s): a decision curve needs at "
                             "least 2 levels")
        if not 0 < self.alpha < 1:
            raise InputError(f"alpha {self.alpha:g} must be in (0, 1)")
        if self.n_boot < MIN_BOOT:
            raise InputError(f"n_boot {self.n_boot} is too small: the bootstrap needs at least "
                             f"{MIN_BOOT} resamples")

    def observer(self, threshold: float, slope: float, lapse: float) -> PsychometricObserver:
        return PsychometricObserver(threshold=threshold, slope=slope, lapse=lapse)

    def model_curves(self) -> np.ndarray:
        """(2, L) accuracy of models A and B at each level."""
        lv = np.asarray(self.levels_percent)
        return np.stack([self.observer(t, self.model_slope, self.model_lapse).p_correct(lv)
                         for t in (self.model_a_threshold, self.model_b_threshold)])

    def trials_per_level(self) -> np.ndarray:
        """(L,) trials each participant has per level under the Latin square."""
        return np.bincount(latin_square_levels(self.n_images, len(self.levels_percent), 0),
                           minlength=len(self.levels_percent))


def _scores(acc_h: np.ndarray, design: PowerDesign) -> np.ndarray:
    """−log MSE of models A, B against pooled human curves (..., L) → (..., 2)."""
    norm_h = normalize(acc_h, design.normalization, 0.5)[..., None, :]
    norm_m = normalize(design.model_curves(), design.normalization, 0.5)
    # an undefined normalized curve gives NaN (no level to compare) without a warning;
    # perfect agreement is capped as in analysis.align (MSE floored at MSE_FLOOR)
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mse = np.nanmean((norm_m - norm_h) ** 2, axis=-1)
    return -np.log(np.maximum(mse, MSE_FLOOR))


def expected_scores(design: PowerDesign, n_draws: int = 20000, seed: int = 0) -> np.ndarray:
    """Scores of A and B against the population's expected pooled curve (infinite participants)."""
    rng = np.random.default_rng(seed)
    th = design.human_threshold * 10 ** rng.normal(0, design.human_threshold_sd, n_draws)
    lv = np.asarray(design.levels_percent)
    acc = np.mean([design.observer(t, design.human_slope, design.human_lapse).p_correct(lv)
                   for t in th], axis=0)
    return _scores(acc, design)


def detect(k: np.ndarray, m: np.ndarray, design: PowerDesign, rng: np.random.Generator) -> bool:
    """Is the A−B score difference detected from per-participant counts k, m of shape (n, L)?"""
    n, r = k.shape[0], design.n_boot
    # participants drawn with replacement: each resample's counts of each participant
    draws = rng.integers(0, n, (r, n)) + (np.arange(r) * n)[:, None]
    w = np.bincount(draws.ravel(), minlength=r * n).reshape(r, n).astype(float)
    acc = (w @ k) / (w @ m)                                 # (R, L) pooled human curves
    s = _scores(acc, design)
    diff = s[:, 0] - s[:, 1]
    if np.isnan(diff).all():
        return False
    lo, hi = np.nanpercentile(diff, [50 * design.alpha, 100 - 50 * design.alpha])
    return bool(lo > 0 or hi < 0)


def _thresholds(n: int, design: PowerDesign, rng: np.random.Generator) -> np.ndarray:
    return design.human_threshold * 10 ** rng.normal(0, design.human_threshold_sd, n)


def count_experiment(design: PowerDesign):
    """The fast study: per-participant correct counts drawn as binomials per level."""
    lv = np.asarray(design.levels_percent)
    m = design.trials_per_level()

    def run(n: int, rng: np.random.Generator) -> bool:
        # PsychometricObserver.p_correct for every participant at once (n, L)
        x = np.log10(lv)[None, :] - np.log10(_thresholds(n, design, rng))[:, None]
        guess = design.observer(design.human_threshold, design.human_slope,
                                design.human_lapse).guess
        p = guess + (1 - guess - design.human_lapse) / (1 + np.exp(-design.human_slope * x))
        k = rng.binomial(np.broadcast_to(m, p.shape), p).astype(float)
        return detect(k, np.broadcast_to(m, p.shape).astype(float), design, rng)

    return run


def trial_experiment(design: PowerDesign):
    """The direct study: Latin-square trial rows answered one by one by simulated observers."""
    n_levels = len(design.levels_percent)

    def rows_for(list_index: int) -> list[dict]:
        lvl = latin_square_levels(design.n_images, n_levels, list_index)
        return [{"list_id": f"list-{list_index:02d}", "trial": i + 1, "image_id": f"img{i:04d}",
                 "category": "animal" if i % 2 else "non-animal", "level_index": int(li),
                 "level_percent": design.levels_percent[li]} for i, li in enumerate(lvl)]

    lists = [rows_for(i) for i in range(n_levels)]

    def run(n: int, rng: np.random.Generator) -> bool:
        k = np.zeros((n, n_levels))
        m = np.zeros((n, n_levels))
        for i, t in enumerate(_thresholds(n, design, rng)):
            obs = replace(design.observer(t, design.human_slope, design.human_lapse),
                          rt_mu=300.0, rt_sigma=1.0, rt_tau=0.0)  # no timeouts: curves only
            rows = simulate_observer(lists[i % n_levels], obs, rng, observer_id=f"sim-{i:03d}")
            li = np.array([r["level_index"] for r in rows])
            ok = np.array([r["correct"] for r in rows], dtype=float)
            k[i] = np.bincount(li, ok, n_levels)
            m[i] = np.bincount(li, minlength=n_levels)
        return detect(k, m, design, rng)

    return run


def power_analysis(design: PowerDesign, n_values, n_sims: int = 200, seed: int = 0,
                   progress: bool = True) -> list[PowerPoint]:
    """Power to detect the A−B alignment difference for each number of participants."""
    return simulate_power(count_experiment(design), n_values, n_sims, seed, progress)


def _figure(points: list[PowerPoint], target: float, path: Path, title: str,
            labelled=(), found: int | None = None) -> None:
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    fig, ax = plt.subplots(figsize=(6.0, 3.9), dpi=120)
    n = [p.n for p in points]
    ax.errorbar(n, [p.power for p in points], yerr=[2 * p.mc_se for p in points], marker="o",
                ms=4, capsize=3, color="#1f4e79", label="simulated power (±2 MC s.e.)")
    ax.axhline(target, ls="--", color="#b03a2e", label=f"target {target:g}")
    if found is not None:
        ax.axvline(found, ls=":", color="#2e7d32", label=f"smallest n found: {found}")
    ax.set_xscale("log")
    doubled = {v for v in n if v > max(labelled, default=0) and v & (v - 1) == 0}
    ticks = sorted(set(labelled) | doubled | ({found} if found else set())) or n
    if found is not None:  # a label next to the answer would overlap it
        ticks = [t for t in ticks if t == found or not 0.8 < t / found < 1.25]
    ax.set_xticks(ticks, [str(v) for v in ticks])
    ax.xaxis.set_minor_formatter(NullFormatter())   # no "3×10¹" over "32"
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("participants")
    ax.set_ylabel("power")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


#: Largest participant count --n simulates (a study of more is not a pilot question).
MAX_N = 10_000


def _participant_count(text: str) -> int:
    """One value of --n: a participant count in [2, MAX_N]."""
    import argparse

    value = int_at_least(2)(text)
    if value > MAX_N:
        raise argparse.ArgumentTypeError(f"{value} participants is too many (at most {MAX_N})")
    return value


_participant_count.__name__ = "participant count"


def add_arguments(parser) -> None:
    d = PowerDesign()
    parser.add_argument("--out", required=True,
                        help="output folder for power.csv, power.png, power.json")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an earlier power analysis in --out")
    parser.add_argument("--n", type=list_item(_participant_count), nargs="+",
                        default=[4, 8, 16, 32, 64], metavar="N",
                        help="participant counts, separated by spaces, each ≥ 2 "
                             "(default 4 8 16 32 64)")
    parser.add_argument("--sims", type=int_in(1, 100_000), default=200,
                        help="simulated studies per count")
    parser.add_argument("--power", type=float_in(0, 1, low_open=True), default=0.8,
                        help="target power, in (0, 1]")
    parser.add_argument("--alpha", type=float_in(0, 1, low_open=True, high_open=True),
                        default=d.alpha, help="two-sided level, in (0, 1)")
    parser.add_argument("--images", type=int_in(2, 1_000_000), default=d.n_images,
                        help="images in the set (at least one per level)")
    parser.add_argument("--n-levels", type=int_in(2, 100), default=len(d.levels_percent),
                        help="number of levels, log-spaced from 1 to 100 %% revealed (at least 2; "
                             f"default {len(d.levels_percent)})")
    percent = float_in(0, 100, low_open=True)
    positive = float_in(0, 1e6, low_open=True)
    parser.add_argument("--human-threshold", type=percent, default=d.human_threshold,
                        help="%% revealed, in (0, 100]")
    parser.add_argument("--human-threshold-sd", type=float_in(0, 5), default=d.human_threshold_sd,
                        help="between-participant sd of log10 threshold")
    parser.add_argument("--human-slope", type=positive, default=d.human_slope)
    parser.add_argument("--human-lapse", type=float_in(0, 0.5, high_open=True),
                        default=d.human_lapse, help="in [0, 0.5)")
    parser.add_argument("--model-a-threshold", type=percent, default=d.model_a_threshold)
    parser.add_argument("--model-b-threshold", type=percent, default=d.model_b_threshold)
    parser.add_argument("--model-slope", type=positive, default=d.model_slope)
    parser.add_argument("--normalization", default=d.normalization, choices=("chance", "minmax"))
    parser.add_argument("--n-boot", type=int_in(MIN_BOOT, 100_000), default=d.n_boot,
                        help=f"bootstrap resamples per study (at least {MIN_BOOT}; default "
                             f"{d.n_boot})")
    parser.add_argument("--seed", type=int_at_least(0), default=0, help="random seed (default 0)")
    parser.add_argument("--no-search", dest="search", action="store_false",
                        help="only simulate the --n counts; by default the smallest n reaching "
                             "--power is searched (doubling from the counts, then bisection)")
    parser.add_argument("--max-n", type=_participant_count, default=4096,
                        help="largest n the search tries (default 4096)")


def _search_record(search: SearchResult, seconds: float) -> dict:
    return {"n": search.n, "n_max": search.n_max, "seconds": round(seconds, 1),
            "power_at_n": None if search.at_n is None else search.at_n.power,
            "mc_se_at_n": None if search.at_n is None else search.at_n.mc_se,
            "below": None if search.below is None else asdict(search.below),
            "within_2_mc_se_of_target": search.near,
            "simulated_n": [p.n for p in search.points]}


def _answer(need: int | None, search: SearchResult | None, target: float, top: int) -> str:
    """The line that answers "how many participants do I need?"."""
    if search is None:
        return (f"smallest simulated n with power ≥ {target:g}: "
                + (str(need) if need is not None else
                   f"not reached up to {top} (drop --no-search to search further)"))
    if search.n is None:
        return (f"power {target:g} is not reached even with {search.n_max} participants "
                "(--max-n); the models differ too little for this design")
    text = (f"smallest n with power ≥ {target:g}: {search.n} (power {search.at_n.power:.3f} ± "
            f"{search.at_n.mc_se:.3f} MC s.e.")
    if search.below is not None:
        text += (f"; n = {search.below.n} gave {search.below.power:.3f} ± "
                 f"{search.below.mc_se:.3f}")
    text += ")"
    if len(search.near) > 1:
        text += (f"; n = {', '.join(map(str, search.near))} are all within 2 MC s.e. of the "
                 "target, so the answer is that uncertain (more --sims narrows it)")
    return text


def main(args) -> int:
    n_values = sorted(set(args.n))
    out = check_output_folder(args.out, option="--out", overwrite=args.overwrite)
    design = PowerDesign(
        levels_percent=log_spaced_levels(args.n_levels),
        n_images=args.images, human_threshold=args.human_threshold,
        human_threshold_sd=args.human_threshold_sd, human_slope=args.human_slope,
        human_lapse=args.human_lapse, model_a_threshold=args.model_a_threshold,
        model_b_threshold=args.model_b_threshold, model_slope=args.model_slope,
        normalization=args.normalization, alpha=args.alpha, n_boot=args.n_boot)
    truth = expected_scores(design)
    with threadpool_limits(1):  # one small matrix product per resample: BLAS threads only wait
        points = power_analysis(design, n_values, args.sims, args.seed)
        # The same study with B identical to A: how often a difference is "found" that isn't
        # there. The participant bootstrap is anti-conservative with very few participants.
        null_design = replace(design, model_b_threshold=design.model_a_threshold)
        null = {q.n: q for q in power_analysis(null_design, n_values, args.sims, args.seed + 1)}
        search = None
        if args.search:
            print(f"searching the smallest n with power ≥ {args.power:g} (up to {args.max_n})")
            t0 = time.perf_counter()
            search = search_n(count_experiment(design), args.power, n_sims=args.sims,
                              seed=args.seed, n_max=max(args.max_n, max(n_values)),
                              known=points, say=print)
            seconds = time.perf_counter() - t0
            points = search.points
            if search.n is not None and search.n not in null:
                null[search.n] = search_n(count_experiment(null_design), 1.0, n_sims=args.sims,
                                          seed=args.seed + 1, n_start=search.n,
                                          n_max=search.n, progress=False).points[0]
    need = search.n if search is not None else smallest_n(points, args.power)
    lines = ["n_participants,power,mc_se,n_sims,rejections,false_positive_rate,source"]
    lines += [f"{p.n},{p.power:.4f},{p.mc_se:.4f},{p.n_sims},{p.rejections},"
              f"{'' if p.n not in null else f'{null[p.n].power:.4f}'},"
              f"{'grid' if p.n in n_values else 'search'}" for p in points]
    title = (f"A: threshold {design.model_a_threshold:g}%, B: {design.model_b_threshold:g}% "
             f"(−log MSE {truth[0]:.2f} vs {truth[1]:.2f}); α={design.alpha:g}")
    record = provenance(**asdict(design), n_values=n_values, n_sims=args.sims,
                        target_power=args.power, seed=args.seed, search=args.search,
                        max_n=args.max_n)
    record["expected_scores"] = {"model_a": float(truth[0]), "model_b": float(truth[1])}
    record["smallest_n"] = need
    if search is not None:
        record["search"] = _search_record(search, seconds)
    record["observers"] = "simulated (experiment.simulate.PsychometricObserver)"
    with building_folder(out, "analysis power") as tmp:
        atomic_write_text(tmp / "power.csv", "\n".join(lines) + "\n")
        _figure(points, args.power, tmp / "power.png", title, n_values, need)
        atomic_write_text(tmp / "power.json", json.dumps(record, indent=2) + "\n")
    print("\n".join(lines))
    print(f"expected −log MSE: model A {truth[0]:.3f}, model B {truth[1]:.3f}")
    print(_answer(need, search, args.power, max(n_values)))
    print(f"wrote {out / 'power.csv'}, {out / 'power.png'}, {out / 'power.json'}")
    return 0
