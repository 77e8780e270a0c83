"""The whole study from one config: stimuli → lists → observers → models → report.

``python -m analysis pipeline --config study.toml`` runs a lab's own images, maps, sessions
and models; ``configs/demo.toml`` is the built-in demo. Relative paths in a config are read
from the config file's folder. Every step writes into the study folder, which carries
``pipeline.json`` (config, provenance, step timings).
"""

from __future__ import annotations

import glob
import json
import shutil
import time
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field, ValidationError

from suite.atomic import atomic_write_text
from suite.config_schema import STRICT, TextList, problem
from suite.errors import InputError
from suite.provenance import provenance

DEFAULT_MODELS = ("efficientnet_lite0_imagenet", "efficientnet_lite1_imagenet",
                  "efficientnet_lite2_imagenet")


class _Section(BaseModel):
    model_config = STRICT


class StimuliSection(_Section):
    source: str = "demo"           # "demo", a build-manifest CSV, or an existing set folder
    order: str = "pgrow"
    budget: int = Field(16384, ge=1)
    levels: int = Field(11, ge=2)  # how many, log-spaced from 1 to 100 %
    full: bool = True
    seed: int = Field(0, ge=0)


class ListsSection(_Section):
    blocks: int = Field(5, ge=1)
    seed: int = Field(0, ge=0)
    practice_stimuli: str = ""     # a stimulus set of other images for practice trials


class SimulatedSection(_Section):
    n: int = Field(0, ge=0)        # simulated participants (0: none)
    threshold: float = 10.0        # population median, % revealed
    threshold_sd: float = 0.15     # between-participant sd of log10 threshold
    slope: float = 3.0
    lapse: float = 0.04
    seed: int = Field(0, ge=0)


class HumansSection(_Section):
    sessions: TextList = ()        # trial tables (globs) from the lab runner or online export


class ModelsSection(_Section):
    names: TextList = DEFAULT_MODELS
    rule: str = "top1"
    batch_size: int = Field(0, ge=0)  # 0: the models package's default (8 on the CPU, 64 on a GPU)
    precision: str = "fp32"        # or "bf16" (faster on AMX CPUs and GPUs; may flip near ties)
    device: str = "cpu"
    accuracy_images: str = ""      # labelled images (manifest with file, class_index) for top-1
    accuracy_required: bool = False


class ReportSection(_Section):
    n_boot: int = Field(1000, ge=1)
    normalization: str = "chance"
    seed: int = Field(0, ge=0)


class StudySection(_Section):
    out: str                       # the study folder, relative to the config file
    name: str = ""                 # default: the config file's name


class StudyFile(_Section):
    """The study TOML as written: [study] and the step sections, each optional but [study]."""

    study: StudySection
    stimuli: StimuliSection = StimuliSection()
    lists: ListsSection = ListsSection()
    simulated_humans: SimulatedSection = SimulatedSection()
    humans: HumansSection = HumansSection()
    models: ModelsSection = ModelsSection()
    report: ReportSection = ReportSection()


@dataclass(frozen=True)
class StudyConfig:
    name: str
    out: Path
    base: Path
    stimuli: StimuliSection = StimuliSection()
    lists: ListsSection = ListsSection()
    simulated: SimulatedSection = SimulatedSection()
    humans: HumansSection = HumansSection()
    models: ModelsSection = ModelsSection()
    report: ReportSection = ReportSection()

    def path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else (self.base / p).resolve()

    def record(self) -> dict:
        """Plain data for pipeline.json: paths as text, each section as a table."""
        return {f.name: (str(v) if isinstance(v, Path) else
                         v.model_dump() if isinstance(v, BaseModel) else v)
                for f in fields(self) for v in (getattr(self, f.name),)}


def _config_error(path: Path, err: ValidationError) -> InputError:
    """The first problem of a study TOML as one line naming the file, section and key."""
    first = err.errors()[0]
    loc = tuple(first["loc"])
    if first["type"] == "extra_forbidden" and len(loc) == 1:
        unknown = sorted(str(e["loc"][0]) for e in err.errors()
                         if e["type"] == "extra_forbidden" and len(e["loc"]) == 1)
        return InputError(f"{path}: unknown section(s) {unknown}; known: "
                          f"{', '.join(StudyFile.model_fields)}")
    if loc in (("study",), ("study", "out")) and first["type"] == "missing":
        return InputError(f"{path}: [study] needs out = \"FOLDER\" for the results")
    section = loc[:1]
    where = f"{path.name} [{loc[0]}]"
    if first["type"] == "model_type" and len(loc) == 1:
        return InputError(f"{where}: must be a [{loc[0]}] table, got {first['input']!r}")
    line = problem(err, where, section)
    if first["type"] == "extra_forbidden":
        model = StudyFile.model_fields[loc[0]].annotation
        line += f"; known: {sorted(model.model_fields)}"
    return InputError(line)


def load_config(path: str | Path) -> StudyConfig:
    """Read a study TOML into a StudyConfig; unknown keys and wrong types are errors."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise InputError(f"{path}: cannot read the study config ({err.strerror})") from None
    except tomllib.TOMLDecodeError as err:
        raise InputError(f"{path}: not valid TOML ({err})") from None
    try:
        study = StudyFile.model_validate(data)
    except ValidationError as err:
        raise _config_error(path, err) from None
    base = path.resolve().parent
    out = Path(study.study.out).expanduser()
    return StudyConfig(name=study.study.name or path.stem,
                       out=out if out.is_absolute() else (base / out).resolve(), base=base,
                       stimuli=study.stimuli, lists=study.lists,
                       simulated=study.simulated_humans, humans=study.humans,
                       models=study.models, report=study.report)


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise InputError(f"{out}: study folder is not empty; choose another [study] out "
                             "or pass --overwrite")
        if not (out / "pipeline.json").is_file():
            raise InputError(f"{out}: not empty and not made by the pipeline (no pipeline.json); "
                             "refusing to delete it — choose another [study] out")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)


class _Steps:
    """Prints each step as it starts and records its wall time."""

    def __init__(self):
        self.times: dict[str, float] = {}

    def run(self, name: str, fn, *args, **kwargs):
        print(f"\n== {name} ==", flush=True)
        t0 = time.perf_counter()
        result = fn(*args, **kwargs)
        self.times[name] = round(time.perf_counter() - t0, 2)
        print(f"   {name}: {self.times[name]:.1f} s", flush=True)
        return result


def _stimuli(cfg: StudyConfig, out: Path) -> Path:
    from stimuli.build import build_stimulus_set
    from stimuli.config import BuildConfig, log_spaced_levels

    s = cfg.stimuli
    if s.source == "demo":
        from stimuli.demo import MAPS_NOTE, write_demo_inputs

        manifest = write_demo_inputs(out / "inputs")
        note = MAPS_NOTE
        print(f"   {note}")
    else:
        src = cfg.path(s.source)
        if (src.is_dir() and (src / "manifest.csv").is_file()
                and (src / "stimulus_set.json").is_file()):
            print(f"   using the existing stimulus set {src}")
            return src
        manifest, note = src, ""
    config = BuildConfig(levels_percent=log_spaced_levels(s.levels), full=s.full, order=s.order,
                         budget=s.budget, seed=s.seed, maps_note=note)
    return build_stimulus_set(manifest, out / "stimuli", config)


def _simulated(cfg: StudyConfig, list_paths: list[Path], out: Path) -> Path | None:
    from experiment.schema import TRIAL_COLUMNS, TRIAL_LIST_COLUMNS, read_rows, write_table
    from experiment.simulate import PsychometricObserver, simulate_observer

    s = cfg.simulated
    if s.n <= 0:
        return None
    rng = np.random.default_rng(s.seed)
    lists = [read_rows(p, TRIAL_LIST_COLUMNS) for p in list_paths]
    rows = []
    from tqdm import tqdm

    for i in tqdm(range(s.n), desc="simulated participants", unit="obs"):
        threshold = s.threshold * 10 ** rng.normal(0, s.threshold_sd)
        obs = PsychometricObserver(threshold=threshold, slope=s.slope, lapse=s.lapse)
        rows += simulate_observer(lists[i % len(lists)], obs, rng, observer_id=f"sim-{i + 1:03d}")
    path = out / "trials" / "simulated_humans.csv"
    write_table(path, rows, TRIAL_COLUMNS)
    print(f"   {s.n} SIMULATED participants (not people) → {path}")
    return path


def _models(cfg: StudyConfig, set_dir: Path, out: Path) -> tuple[Path | None, Path | None]:
    """The model observers through ``models sweep`` (the set decoded once, one output per
    model in ``out/models``); the merged tables land where the report reads them."""
    from models.sweep import SweepOptions, sweep

    m = cfg.models
    if not m.names:
        return None, None
    images = cfg.path(m.accuracy_images) if m.accuracy_images else None
    if images is not None and not images.exists():
        if m.accuracy_required:
            raise InputError(f"{images}: [models] accuracy_images not found")
        print(f"   NOTE: {images} not found — ImageNet accuracy not measured; the "
              "accuracy-vs-alignment figure is left out")
        images = None
    rules = (m.rule,) if isinstance(m.rule, str) else tuple(m.rule)
    result = sweep(list(m.names), SweepOptions(
        stimuli=set_dir, out=out / "models", rules=rules, accuracy=images,
        batch_size=m.batch_size or None, device=m.device, precision=m.precision,
        log=lambda line: print(f"   {line}")))
    if result["failed"]:
        failed = "; ".join(f"{s['model']}: {s['error']}" for s in result["failed"])
        raise InputError(f"[models] {len(result['failed'])} model(s) failed ({failed}); "
                         f"see {out / 'models' / 'failures.csv'}")
    trials = out / "trials" / "models.csv"
    trials.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(result["trials"], trials)
    acc_path = None
    if images is not None:
        for s in result["summary"]:
            print(f"   {s['model']}: ImageNet top-1 {float(s['top1']):.1%}")
        acc_path = out / "model_accuracy.csv"
        shutil.copyfile(result["accuracy"], acc_path)
    return trials, acc_path


def run_pipeline(cfg: StudyConfig, overwrite: bool = False) -> dict:
    """Run every step of the study; returns the record written to pipeline.json."""
    from analysis.report import render_report
    from experiment.lists import ListConfig, write_lists

    out = cfg.out
    sessions = []
    for pattern in cfg.humans.sessions:
        found = sorted(glob.glob(str(cfg.path(pattern))))
        if not found:
            raise InputError(f"[humans] sessions: nothing matches {cfg.path(pattern)}")
        sessions += [Path(p) for p in found]
    if not sessions and cfg.simulated.n <= 0:
        raise InputError("the study has no observers: list [humans] sessions or set "
                         "[simulated_humans] n > 0")
    _prepare_out(out, overwrite)
    config_record = cfg.record()
    # Marks the folder as the pipeline's from the start, so a failed run can be redone
    # with --overwrite; the finished record replaces it.
    atomic_write_text(out / "pipeline.json", json.dumps(
        {"status": "running", "config": config_record}, indent=2, default=str) + "\n")
    steps = _Steps()
    t0 = time.perf_counter()
    set_dir = steps.run("stimuli", _stimuli, cfg, out)
    practice = cfg.path(cfg.lists.practice_stimuli) if cfg.lists.practice_stimuli else None
    list_paths = steps.run("trial lists", write_lists, set_dir, out / "lists",
                           ListConfig(seed=cfg.lists.seed, blocks=cfg.lists.blocks), practice)
    print(f"   {len(list_paths)} lists in {out / 'lists'}")
    sim = steps.run("simulated observers", _simulated, cfg, list_paths, out)
    model_trials, acc = steps.run("model observers", _models, cfg, set_dir, out)
    trial_files = [p for p in (sim, model_trials) if p is not None] + sessions
    page = steps.run("report", render_report, trial_files, out / "report", acc,
                     normalization=cfg.report.normalization, n_boot=cfg.report.n_boot,
                     seed=cfg.report.seed, say=lambda line: print(f"   {line}"),
                     stimuli=set_dir)
    record = provenance(config=config_record)
    record.update(status="complete", steps_seconds=steps.times,
                  total_seconds=round(time.perf_counter() - t0, 1),
                  stimulus_set=str(set_dir), lists=[str(p) for p in list_paths],
                  trial_tables=[str(p) for p in trial_files],
                  model_accuracy=str(acc) if acc else None, report=str(page),
                  simulated_participants=cfg.simulated.n, human_sessions=len(sessions))
    atomic_write_text(out / "pipeline.json", json.dumps(record, indent=2, default=str) + "\n")
    return record


def add_arguments(parser) -> None:
    parser.add_argument("--config", required=True, help="study TOML (see configs/demo.toml)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a study folder the pipeline made before")


def main(args) -> int:
    cfg = load_config(args.config)
    record = run_pipeline(cfg, overwrite=args.overwrite)
    report_dir = Path(record["report"]).parent
    print(f"\nDone in {record['total_seconds']:.0f} s. Report: {record['report']}")
    print(f"  figures and tables: {report_dir}")
    print(f"  trial tables: {', '.join(record['trial_tables'])}")
    if record["simulated_participants"]:
        print(f"  the 'human' curve comes from {record['simulated_participants']} SIMULATED "
              "participants, labelled as such throughout")
    print(f"  provenance: {cfg.out / 'pipeline.json'}")
    return 0
