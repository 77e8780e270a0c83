"""The online study's settings, with paradigm §1/§5 defaults; saved in the site as study.json."""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, Field, ValidationError, create_model

from experiment.paradigm import TrialTiming
from suite.config_schema import STRICT, TextList, problem
from suite.errors import InputError

_PARADIGM = TrialTiming()  # the page's field names differ (seconds, JSON), the values do not

# ids become file names and URL parts, so they are kept to a safe alphabet
SAFE_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
# keys a participant can press; jsPsych and KeyboardEvent.key use these lower-case names
SAFE_KEY = re.compile(r"^[a-z0-9]$")


@dataclass(frozen=True)
class Timing:
    """Trial timing (paradigm §1): fixation range, stimulus and response window, feedback."""

    fixation_min_ms: float = _PARADIGM.fixation_min_ms
    fixation_max_ms: float = _PARADIGM.fixation_max_ms
    # shown for round(stimulus_s * refresh) frames
    stimulus_s: float = _PARADIGM.stimulus_ms / 1000.0
    response_extra_ms: float = _PARADIGM.extra_response_ms  # window closes 550 ms after onset
    too_slow_ms: float = _PARADIGM.too_slow_ms  # "too slow" feedback after a timeout
    practice_feedback_ms: float = _PARADIGM.practice_feedback_ms  # "correct"/"wrong" in practice
    refresh_min_hz: float = 48.0       # plausible refresh estimates; outside = browser check fails
    refresh_max_hz: float = 250.0
    min_window_px: int = 256           # device pixels, so the 256×256 stimulus is shown 1:1

    @property
    def window_ms(self) -> float:
        """Response window from image onset, ms."""
        return self.stimulus_s * 1000.0 + self.response_extra_ms


@dataclass(frozen=True)
class CalibrationLimits:
    """What the virtual chinrest may measure before a participant is stopped (docs/online.md).

    px/cm is in CSS pixels (what the card measures): 15-80 covers a 24-inch 1080p monitor
    (~37), a laptop at devicePixelRatio 2 (~45-50), a 4K monitor at 1 (~64) and a TV (~17);
    outside, the card was not matched. The viewing distance 30-130 cm covers a laptop on the
    knees to a desktop monitor pushed back; outside, the blind spot was not found.
    """

    px_per_cm_min: float = 15.0
    px_per_cm_max: float = 80.0
    distance_cm_min: float = 30.0
    distance_cm_max: float = 130.0
    blindspot_reps: int = 5        # blind-spot sweeps averaged (the plugin's default)


# why a participant was stopped before a list was assigned (POST /api/screen-out)
SCREEN_OUT_REASONS = ("declined", "implausible_calibration", "screen_too_small")


@dataclass(frozen=True)
class StudyConfig:
    """Everything the page and the server need to know about one online study."""

    study_id: str
    lists: tuple[str, ...]
    keys: dict = field(default_factory=lambda: {"animal": "f", "non-animal": "j"})
    title: str = "Animal or not?"
    completion_code: str = ""
    completion_url: str = ""
    timing: Timing = Timing()
    # image width in degrees of visual angle, the virtual chinrest first (build-online's
    # default is 8); None: native pixels, one image pixel per device pixel, no calibration
    # (the source paper's way, and the ClickMe game's)
    stimulus_deg: float | None = None
    calibration: CalibrationLimits = CalibrationLimits()
    background: str = "#ffffff"    # the page's background (#rrggbb), text black or white on it
    text_colour: str = "#000000"
    practice_criterion: float | None = None   # repeat practice until this accuracy (0-1)
    practice_max_rounds: int = 3
    # the lab's own texts as sanitized HTML (build-online --consent/--instructions/--debrief);
    # None: the built-in text
    texts: dict = field(default_factory=lambda: {"consent": None, "instructions": None,
                                                 "debrief": None})

    def to_json(self) -> dict:
        """Plain-data form written to study.json."""
        out = dataclasses.asdict(self)
        out["lists"] = list(self.lists)
        return out

    @classmethod
    def from_json(cls, data: object, where: object = "study.json") -> StudyConfig:
        """Inverse of to_json, checked against the study.json schema (``StudyFile``: every
        key known, every value of its type); raises InputError naming ``where`` and the key."""
        try:
            parsed = StudyFile.model_validate(data)
        except ValidationError as err:
            raise InputError(problem(err, str(where), table="an object") + "; rebuild the site "
                             "with python -m experiment build-online") from None
        values = parsed.model_dump(by_alias=True)
        values["timing"] = Timing(**values["timing"])
        values["calibration"] = CalibrationLimits(**values["calibration"])
        return cls(**values)


@dataclass(frozen=True)
class ServerLimits:
    """Limits the study server puts on clients (serve options; docs/online.md).

    - ``sessions_per_client`` new sessions per client address per ``session_window_s``
      (0: no limit). A script cannot then fill the lists with anonymous sessions, which
      would all count for list balancing; resuming with a token is never limited.
    - ``min_duration_factor``: the completion code is refused before the session is
      ``factor × trials × (fixation_min_ms + stimulus)`` old, the least time the list can
      take (0: no check). Below 1, so rounding fixation to frames never refuses a person.
    - ``trust_proxy``: the client address is the last ``X-Forwarded-For`` entry (the one a
      reverse proxy in front of the server added) instead of the connection's address.
    """

    sessions_per_client: int = 20
    session_window_s: float = 600.0
    min_duration_factor: float = 0.9
    trust_proxy: bool = False

    def min_duration_s(self, n_trials: int, timing: Timing) -> float:
        """Least seconds from session start to completion for a list of ``n_trials``."""
        per_trial_ms = timing.fixation_min_ms + timing.stimulus_s * 1000.0
        return self.min_duration_factor * n_trials * per_trial_ms / 1000.0


def parse_keys(given: Sequence[str]) -> dict:
    """``--keys f j`` -> {'animal': 'f', 'non-animal': 'j'}; raises InputError on anything else."""
    parts = [p.strip().lower() for p in given]
    if len(parts) != 2 or parts[0] == parts[1] or not all(SAFE_KEY.match(p) for p in parts):
        raise InputError(f"--keys {' '.join(given)}: give two different single letters or "
                         "digits, animal key first, e.g. --keys f j")
    return {"animal": parts[0], "non-animal": parts[1]}


# ---- the study.json schema, made from the dataclasses above (one list of fields) ------------

def _schema(cls, name: str, **override) -> type[BaseModel]:
    """A strict pydantic model with ``cls``'s fields, types and defaults; ``override`` maps a
    field to (type, default) where the dataclass's own does not say enough."""
    hints = typing.get_type_hints(cls)
    spec = {}
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else ...)
        spec[f.name] = override.get(f.name, (hints[f.name], default))
    return create_model(name, __config__=STRICT, **spec)


class StudyKeys(BaseModel):
    """study.json's keys: the animal key and the non-animal key."""

    model_config = STRICT
    animal: str
    non_animal: str = Field(alias="non-animal")


TimingFile = _schema(Timing, "TimingFile")
CalibrationFile = _schema(CalibrationLimits, "CalibrationFile")
StudyFile = _schema(StudyConfig, "StudyFile", lists=(TextList, ...),
                    keys=(StudyKeys, StudyKeys(animal="f", **{"non-animal": "j"})),
                    timing=(TimingFile, TimingFile()),
                    # a site built before the virtual chinrest drew native pixels
                    stimulus_deg=(float | None, None),
                    calibration=(CalibrationFile, CalibrationFile()),
                    texts=(dict[str, str | None], {"consent": None, "instructions": None,
                                                   "debrief": None}))
