"""SIMULATED ClickMe players: bubble paths drawn from a hidden "true" map, for tests, demos,
benchmarks.

Nothing here is human data. A simulated player paints like the game's players (paradigm §6):
a bubble every 50 ms along a pointer path, a repeated position skipped, at most 7 s per
image. The path runs in strokes: it heads for a target pixel drawn with probability
∝ hidden map ** ``sharpness`` (now and then, with probability ``lapse``, a uniformly
drawn pixel: a player exploring), ``step_px`` per bubble with Gaussian jitter, and picks
a new target on arrival. The round ends at a random time (recognition) or at 7 s. Every
player id starts with ``SIMULATED-`` so such rows can never pass for people's.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np

from stimuli.click_maps import FRAME

SIMULATED_PREFIX = "SIMULATED-"
ROUND_MS = 7000
BUBBLE_EVERY_MS = 50


def hidden_map(rng: np.random.Generator, n_blobs: int = 3, size: int = FRAME) -> np.ndarray:
    """A SIMULATED "true" importance map: ``n_blobs`` Gaussian blobs, (size, size) float32
    in 0–1."""
    yy, xx = np.mgrid[:size, :size].astype(np.float64)
    m = np.zeros((size, size))
    for _ in range(n_blobs):
        cx, cy = rng.uniform(0.15 * size, 0.85 * size, 2)
        sigma = rng.uniform(0.10 * size, 0.20 * size)
        m += rng.uniform(0.5, 1.0) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
    return (m / m.max()).astype(np.float32)


def simulate_path(true_map: np.ndarray, rng: np.random.Generator, step_px: float = 10.0,
                  jitter_px: float = 2.0, sharpness: float = 1.0, lapse: float = 0.02,
                  min_ms: int = 2000) -> np.ndarray:
    """One SIMULATED round's path: (n, 3) float [x, y, t_ms], integer pixel positions."""
    size = true_map.shape[0]
    p = np.asarray(true_map, np.float64).ravel() ** sharpness
    p /= p.sum()

    def target() -> np.ndarray:
        if rng.random() < lapse:
            return rng.uniform(0, size, 2)
        i = rng.choice(p.size, p=p)
        return np.array([i % size, i // size], float) + rng.uniform(0, 1, 2)

    end_ms = int(rng.integers(min_ms, ROUND_MS + 1))
    pos, goal = target(), target()
    out, last = [], None
    for t in range(0, end_ms, BUBBLE_EVERY_MS):
        gap = goal - pos
        dist = float(np.hypot(*gap))
        if dist < step_px:
            goal = target()
        else:
            pos = pos + gap / dist * step_px
        pos = np.clip(pos + rng.normal(0, jitter_px, 2), 0, size - 1e-6)
        cell = (int(pos[0]), int(pos[1]))
        if cell != last:  # the game skips a repeated position
            out.append((cell[0], cell[1], t))
            last = cell
    return np.asarray(out, dtype=np.float64).reshape(-1, 3)


def simulate_clicks(true_maps: Mapping[str, np.ndarray], n_players: int, seed: int = 0,
                    rounds_per_image: int = 1) -> list[dict]:
    """Rows of a clicks CSV (docs/maps.md) from SIMULATED players, each playing every image."""
    rng = np.random.default_rng(seed)
    rows = []
    for k in range(n_players):
        player = f"{SIMULATED_PREFIX}{k + 1:03d}"
        for image_id, m in true_maps.items():
            for j in range(rounds_per_image):
                path = simulate_path(m, rng)
                recognized = path[-1, 2] + BUBBLE_EVERY_MS < ROUND_MS if len(path) else False
                left = (max(0.0, 1 - (path[-1, 2] + BUBBLE_EVERY_MS) / ROUND_MS)
                        if len(path) else 0.0)
                rows.append({
                    "image_id": image_id, "player_id": player,
                    "round_id": f"{player}-{image_id}-{j + 1}",
                    "outcome": "recognized" if recognized else "timeout",
                    "points": round(100 * left) if recognized else 0,
                    "n_bubbles": len(path),
                    "path": json.dumps(path.astype(int).tolist(), separators=(",", ":")),
                })
    return rows
