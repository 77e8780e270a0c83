"""What shapes a stimulus set: the levels and every build option, checked (paradigm §1–2)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stimuli.masks import ORDERS
from suite.errors import InputError


def log_spaced_levels(n: int = 11) -> tuple[float, ...]:
    """``n`` percentages log-spaced from 1 to 100 (paradigm §1: the authors use n = 11)."""
    return tuple(float(p) for p in 10 ** np.linspace(0, 2, n))


DEFAULT_LEVELS = log_spaced_levels(11)
SPECTRA = ("image", "set")
#: Largest canvas side, px (docs/stimuli.md): 8x the paradigm's 256, still shown 1:1 on a 4K
#: display; rendering one image at 2048 peaks near 0.6 GB per worker (4096: ~2 GB).
MAX_SIZE = 2048


@dataclass(frozen=True)
class BuildConfig:
    """Every parameter that shapes a stimulus set; defaults from paradigm §1-2 and
    docs/stimuli.md."""

    size: int = 256                      # canvas side, px
    levels_percent: tuple[float, ...] = DEFAULT_LEVELS
    full: bool = True                    # add the unmasked full-image condition after the levels
    order: str = "pgrow"                 # rank | grow | pgrow
    budget: int = 16384                  # pixels revealed at 100 % (a quarter of 256 x 256)
    seed: int = 0                        # set seed; per-image seeds derive from it and image_id
    spectrum: str = "image"              # image: own amplitude spectrum; set: set-average spectrum
    # zlib level for PNGs; with Huffman-only coding (see render.encode_png)
    png_compress_level: int = 6
    # where the maps came from, saved with the set
    maps_note: str = field(default="", compare=False)

    def __post_init__(self):
        problems = []
        if not 8 <= self.size <= MAX_SIZE:
            problems.append(f"size {self.size} outside 8..{MAX_SIZE}")
        if not 1 <= self.budget <= self.size * self.size:
            problems.append(f"budget {self.budget} outside 1..{self.size * self.size} "
                            "(canvas pixels)")
        lv = self.levels_percent
        if not lv or any(not 0 < p <= 100 for p in lv) or any(
                b <= a for a, b in zip(lv, lv[1:], strict=False)):
            problems.append(f"levels {list(lv)} must be increasing percentages in (0, 100]")
        if self.order not in ORDERS:
            problems.append(f"order {self.order!r} not one of {', '.join(ORDERS)}")
        if self.spectrum not in SPECTRA:
            problems.append(f"spectrum {self.spectrum!r} not one of {', '.join(SPECTRA)}")
        if not 0 <= self.seed < 2 ** 63:
            problems.append(f"seed {self.seed} must be in 0..2**63-1")
        if not 0 <= self.png_compress_level <= 9:
            problems.append(f"png_compress_level {self.png_compress_level} outside 0..9")
        if problems:
            raise InputError("build configuration: " + "; ".join(problems) + "; fix the option(s)")
