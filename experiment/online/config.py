"""The online study's settings, with paradigm §1/§5 defaults; saved in the site as study.json."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from experiment.paradigm import TrialTiming
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
    stimulus_s: float = _PARADIGM.stimulus_ms / 1000.0  # shown for round(stimulus_s * refresh) frames
    response_extra_ms: float = _PARADIGM.extra_response_ms  # window closes 550 ms after onset
    too_slow_ms: float = _PARADIGM.too_slow_ms  # "too slow" feedback after a timeout
    refresh_min_hz: float = 48.0       # plausible refresh estimates; outside = browser check fails
    refresh_max_hz: float = 250.0
    min_window_px: int = 256           # device pixels, so the 256×256 stimulus is shown 1:1

    @property
    def window_ms(self) -> float:
        """Response window from image onset, ms."""
        return self.stimulus_s * 1000.0 + self.response_extra_ms


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

    def to_json(self) -> dict:
        """Plain-data form written to study.json."""
        out = dataclasses.asdict(self)
        out["lists"] = list(self.lists)
        return out

    @classmethod
    def from_json(cls, data: dict) -> StudyConfig:
        """Inverse of to_json; raises InputError on a malformed study.json."""
        try:
            timing = Timing(**data.get("timing", {}))
            return cls(study_id=str(data["study_id"]), lists=tuple(data["lists"]),
                       keys=dict(data["keys"]), title=str(data.get("title", cls.title)),
                       completion_code=str(data.get("completion_code", "")),
                       completion_url=str(data.get("completion_url", "")), timing=timing)
        except (KeyError, TypeError) as err:
            raise InputError(f"study.json is malformed ({err}); rebuild the site "
                             "with python -m experiment build-online") from None


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


def parse_keys(text: str) -> dict:
    """'f,j' -> {'animal': 'f', 'non-animal': 'j'}; raises InputError on anything else."""
    parts = [p.strip().lower() for p in text.split(",")]
    if len(parts) != 2 or parts[0] == parts[1] or not all(SAFE_KEY.match(p) for p in parts):
        raise InputError(f"--keys {text!r}: give two different single letters or digits, "
                         "animal key first, e.g. --keys f,j")
    return {"animal": parts[0], "non-animal": parts[1]}
