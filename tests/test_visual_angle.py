"""Visual-angle geometry against hand values, both directions (experiment/visual_angle.py).

Hand values (exact formula s = 2·D·tan(θ/2), not the small-angle s = D·θ):
8° at 57 cm: tan(4°) = 0.0699268 → s = 114 · 0.0699268 = 7.9717 cm; a 53 cm, 1920 px screen
has 1920 / 53 = 36.2264 px/cm → 288.78 px, drawn at 289 px, which subtend
2·atan((289 / 36.2264) / 114) = 8.0059°.
"""

import math

import pytest

from experiment.visual_angle import (
    CARD_WIDTH_CM,
    angle_deg,
    card_px_per_cm,
    deg_to_px,
    distance_from_eccentricity,
    plan_size,
    px_per_cm,
    px_to_deg,
    size_cm,
    whole_px,
)
from suite.errors import InputError

PPCM = 1920 / 53  # a 53 cm wide screen of 1920 px


def test_degrees_to_cm_and_px_use_the_exact_formula():
    assert size_cm(8, 57) == pytest.approx(7.97166, abs=1e-5)
    assert px_per_cm(1920, 53) == pytest.approx(36.22642, abs=1e-5)
    assert deg_to_px(8, 57, PPCM) == pytest.approx(288.785, abs=1e-3)
    # the small-angle form would give 57 · 8π/180 = 7.9587 cm: not what is computed
    assert abs(size_cm(8, 57) - 57 * math.radians(8)) > 0.01


def test_px_and_cm_to_degrees_by_hand():
    assert px_to_deg(289, 57, PPCM) == pytest.approx(8.00595, abs=1e-5)
    assert px_to_deg(256, 57, PPCM) == pytest.approx(7.09426, abs=1e-5)  # the native 256 px
    assert angle_deg(1.0, 57) == pytest.approx(1.00516, abs=1e-5)  # 1 cm at 57 cm is not 1°
    assert angle_deg(2 * 57, 57) == pytest.approx(90.0)  # s = 2D: 2·atan(1)


@pytest.mark.parametrize("deg,distance,ppcm", [(0.5, 40, 20.0), (8, 57, PPCM), (30, 100, 45.5)])
def test_the_two_directions_invert_each_other(deg, distance, ppcm):
    assert (px_to_deg(deg_to_px(deg, distance, ppcm), distance, ppcm)
            == pytest.approx(deg, rel=1e-12))


def test_whole_pixels_round_half_up_like_javascript():
    assert [whole_px(v) for v in (288.5, 289.49, 2.5, 3.5)] == [289, 289, 3, 4]  # not banker's 2, 4


def test_a_size_in_degrees_is_drawn_at_whole_pixels_and_the_shown_angle_recorded():
    size = plan_size(256, 8, 57, PPCM)
    assert (size.native_px, size.drawn_px, size.upscaled) == (256, 289, True)
    assert size.stimulus_deg == pytest.approx(8.00595, abs=1e-5)
    assert size.px_per_deg == pytest.approx(289 / 8.00595, abs=1e-3)
    assert size.scale == pytest.approx(289 / 256)
    smaller = plan_size(256, 6, 57, PPCM)
    assert smaller.drawn_px == 216 and not smaller.upscaled  # 2·57·tan(3°)·36.226 = 216.4


def test_native_size_records_its_angle_or_none_without_calibration():
    native = plan_size(256, None, 57, PPCM)
    assert native.drawn_px == 256 and native.stimulus_deg == pytest.approx(7.09426, abs=1e-5)
    unknown = plan_size(256, None, None, None)
    assert unknown.drawn_px == 256 and unknown.stimulus_deg is None and unknown.px_per_deg is None
    with pytest.raises(InputError, match="needs the viewing distance"):
        plan_size(256, 8, None, None)


def test_virtual_chinrest_helpers():
    assert CARD_WIDTH_CM == 8.56
    assert card_px_per_cm(323.6) == pytest.approx(37.80, abs=0.01)
    # a blind spot found 14.4 cm from fixation lies at 13.5°: D = 14.4 / tan(13.5°) = 59.98 cm
    assert distance_from_eccentricity(14.4) == pytest.approx(59.98, abs=0.005)


@pytest.mark.parametrize("call", [lambda: size_cm(0, 57), lambda: size_cm(8, -1),
                                  lambda: size_cm(180, 57), lambda: px_to_deg(10, 57, 0),
                                  lambda: angle_deg(float("nan"), 57),
                                  lambda: distance_from_eccentricity(5, 90)])
def test_impossible_values_are_refused(call):
    with pytest.raises(InputError):
        call()
