"""Stimulus size in degrees of visual angle: pure geometry shared by the lab and online runners.

An object of width ``s`` centred on the line of sight at viewing distance ``D`` subtends

    θ = 2 · atan(s / (2 · D))        and, the other way,        s = 2 · D · tan(θ / 2).

These are the exact formulas, used everywhere here; the small-angle form ``s = D · θ``
(PsychoPy's own ``deg`` units) is 0.16 % smaller at 8° and 0.6 % at 16°, so the suite's
numbers differ from PsychoPy's ``deg2pix`` by that much, on purpose.

Pixels: ``px_per_cm = screen width in px / screen width in cm`` (square pixels assumed).
An image is drawn at a whole number of pixels, ``n = floor(s_px + 0.5)`` (half rounds up,
as JavaScript's ``Math.round`` does for positive numbers, so a page computing the same
formulas gets the same ``n``), and the angle recorded is the one those ``n`` pixels
subtend — what was really shown, not what was asked for. ``docs/experiment.md`` ("Stimulus
size") says how the web runner must compute the same.

No PsychoPy here: the functions take numbers and return numbers, or raise ``InputError``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from suite.errors import InputError

#: Width of an ID-1 card (credit card, ISO/IEC 7810): the virtual chinrest's ruler, in cm.
CARD_WIDTH_CM = 8.56
#: Eccentricity of the blind spot's centre the virtual chinrest assumes (Li et al. 2020), in °.
BLIND_SPOT_DEG = 13.5


def _positive(value: float, name: str) -> float:
    if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
        raise InputError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def size_cm(angle_deg: float, distance_cm: float) -> float:
    """Width (cm) of a centred object subtending ``angle_deg`` at ``distance_cm``: 2·D·tan(θ/2)."""
    angle = _positive(angle_deg, "angle")
    if angle >= 180:
        raise InputError(f"angle must be below 180°, got {angle_deg:g}")
    return 2.0 * _positive(distance_cm, "distance") * math.tan(math.radians(angle) / 2.0)


def angle_deg(width_cm: float, distance_cm: float) -> float:
    """Angle (°) a centred object ``width_cm`` wide subtends at ``distance_cm``: 2·atan(s/2D)."""
    return math.degrees(2.0 * math.atan(_positive(width_cm, "width") /
                                        (2.0 * _positive(distance_cm, "distance"))))


def px_per_cm(screen_px: float, screen_cm: float) -> float:
    """Pixels per cm of a screen ``screen_px`` pixels and ``screen_cm`` cm wide."""
    return _positive(screen_px, "screen width in px") / _positive(screen_cm, "screen width in cm")


def deg_to_px(angle: float, distance_cm: float, pixels_per_cm: float) -> float:
    """Width in pixels (not rounded) of a centred object subtending ``angle`` degrees."""
    return size_cm(angle, distance_cm) * _positive(pixels_per_cm, "px per cm")


def px_to_deg(width_px: float, distance_cm: float, pixels_per_cm: float) -> float:
    """Angle (°) a centred object ``width_px`` pixels wide subtends."""
    return angle_deg(_positive(width_px, "width in px") / _positive(pixels_per_cm, "px per cm"),
                     distance_cm)


def whole_px(width_px: float) -> int:
    """The whole number of pixels an image is drawn at: half rounds up (``Math.round``)."""
    return int(math.floor(width_px + 0.5))


def card_px_per_cm(card_width_px: float) -> float:
    """Pixels per cm from an ID-1 card's width on screen in pixels (virtual chinrest)."""
    return _positive(card_width_px, "card width in px") / CARD_WIDTH_CM


def distance_from_eccentricity(offset_cm: float, eccentricity_deg: float = BLIND_SPOT_DEG) -> float:
    """Viewing distance (cm) from a point ``offset_cm`` to the side of fixation that lies at
    ``eccentricity_deg`` (the blind spot at 13.5° in the virtual chinrest): D = x / tan(θ)."""
    ecc = _positive(eccentricity_deg, "eccentricity")
    if ecc >= 90:
        raise InputError(f"eccentricity must be below 90°, got {eccentricity_deg:g}")
    return _positive(offset_cm, "offset") / math.tan(math.radians(ecc))


@dataclass(frozen=True)
class StimulusSize:
    """How an image of ``native_px`` pixels is drawn, and the angle it subtends.

    ``drawn_px`` is the width on screen in whole pixels; ``stimulus_deg`` the angle those
    pixels subtend (None when the screen is not calibrated); ``scale`` = drawn / native;
    ``px_per_deg`` = drawn_px / stimulus_deg, the mean over the image (the exact geometry
    has more pixels per degree away from the centre).
    """

    native_px: int
    drawn_px: int
    requested_deg: float | None
    stimulus_deg: float | None
    px_per_deg: float | None
    px_per_cm: float | None
    distance_cm: float | None

    @property
    def scale(self) -> float:
        return self.drawn_px / self.native_px

    @property
    def upscaled(self) -> bool:
        return self.drawn_px > self.native_px

    def to_dict(self) -> dict:
        return {**asdict(self), "scale": self.scale, "upscaled": self.upscaled}


def plan_size(native_px: int, requested_deg: float | None, distance_cm: float | None,
              pixels_per_cm: float | None) -> StimulusSize:
    """The drawn size of an image ``native_px`` wide: at ``requested_deg`` when given (needs a
    calibration: distance and px/cm), else at its native size (angle computed if calibrated).
    """
    native = int(native_px)
    if native <= 0:
        raise InputError(f"image width must be positive, got {native_px!r}")
    calibrated = distance_cm is not None and pixels_per_cm is not None
    if requested_deg is not None and not calibrated:
        raise InputError("a stimulus size in degrees needs the viewing distance and the screen's "
                         "pixels per cm")
    if requested_deg is None:
        drawn = native
    else:
        drawn = whole_px(deg_to_px(requested_deg, distance_cm, pixels_per_cm))
        if drawn < 1:
            raise InputError(f"{requested_deg:g}° is less than one pixel on this screen")
    shown = px_to_deg(drawn, distance_cm, pixels_per_cm) if calibrated else None
    return StimulusSize(native, drawn, requested_deg, shown,
                        drawn / shown if shown else None, pixels_per_cm, distance_cm)
