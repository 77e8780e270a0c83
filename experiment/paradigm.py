"""The paradigm's trial durations (paradigm §1), shared by the lab runner, the online study
settings and the simulated observer."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TrialTiming:
    """Paradigm durations in ms (paradigm §1); converted to frames once the refresh is known."""

    fixation_min_ms: float = 1100.0
    fixation_max_ms: float = 1600.0
    stimulus_ms: float = 400.0
    extra_response_ms: float = 150.0
    too_slow_ms: float = 1000.0
    practice_feedback_ms: float = 800.0

    def frames(self, ms: float, hz: float) -> int:
        """Whole frames closest to ``ms`` at ``hz``."""
        return int(round(ms * hz / 1000.0))

    @property
    def window_ms(self) -> float:
        """Response window from image onset: the image plus the extra time to answer."""
        return self.stimulus_ms + self.extra_response_ms
