"""The ClickMe game's settings and rules (paradigm §6).

Recognition, points, and the checks on a round.

The page plays by these rules; the server applies them again to every round it is sent,
so a stored round is one the game could have produced. The server stores the bubble path,
never pixels.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from experiment.online.validation import ISO_UTC, Invalid
from stimuli.schema import ANIMAL_CLASS_MAX
from suite.errors import InputError

FRAME = 256              # images are shown and stored in a 256×256 frame
OUTCOMES = ("recognized", "timeout", "skip")
ROUND_FIELDS = {"position", "image_id", "outcome", "points", "path", "queries", "timestamp_utc"}
QUERY_FIELDS = {"n_bubbles", "top5", "recognized"}


@dataclass(frozen=True)
class GameConfig:
    """Everything the page and the server know about one game site (clickme.json)."""

    study_id: str
    seconds: float = 7.0          # per image (paradigm §6)
    bubble: int = 14              # bubble side, px
    interval_ms: float = 50.0     # one bubble per 50 ms along the path
    query_every: int = 10         # the partner is asked after every 10 bubbles
    per_participant: int = 1
    title: str = "ClickMe"
    completion_code: str = ""
    completion_url: str = ""
    grey: int = 128               # the background the revealed region is drawn over
    partner: dict = field(default_factory=dict)      # {"url", "sha256", "model"}
    practice: dict = field(default_factory=dict)     # {"url", "category", "class_index"}
    images: tuple = ()            # ({"image_id", "url", "category", "class_index"}, …)

    @property
    def round_ms(self) -> float:
        return self.seconds * 1000.0

    @property
    def max_bubbles(self) -> int:
        return int(math.floor(self.round_ms / self.interval_ms)) + 1

    def to_json(self) -> dict:
        out = dataclasses.asdict(self)
        out["kind"] = "clickme"
        out["images"] = list(self.images)
        return out

    @classmethod
    def from_json(cls, data: dict) -> GameConfig:
        try:
            fields = {f.name for f in dataclasses.fields(cls)}
            values = {k: v for k, v in data.items() if k in fields}
            values["images"] = tuple(values.get("images", ()))
            return cls(**values)
        except TypeError as err:
            raise InputError(f"clickme.json is malformed ({err}); rebuild the site with "
                             "python -m experiment build-clickme") from None

    def image(self, image_id: str) -> dict:
        return self._by_id()[image_id]

    def _by_id(self) -> dict:
        cache = self.__dict__.get("_cache")
        if cache is None:
            cache = {im["image_id"]: im for im in self.images}
            object.__setattr__(self, "_cache", cache)
        return cache


def is_recognized(top5: list[int], class_index: int | None, category: str) -> bool:
    """The partner recognized the image: its class is in the top 5; for an image without a
    class, the partner's animal/non-animal decision (top-1 in 0–397 = animal) is right."""
    if class_index is not None:
        return class_index in top5
    return (top5[0] <= ANIMAL_CLASS_MAX) == (category == "animal")


def points_for(t_ms: float, round_ms: float) -> int:
    """100 × the share of the round's time left when the partner recognized (floored)."""
    return int(math.floor(100.0 * max(0.0, round_ms - t_ms) / round_ms))


def _int_in(v, lo: int, hi: int, what: str) -> int:
    if type(v) is not int or not lo <= v <= hi:
        raise Invalid(f"{what} must be an integer in [{lo}, {hi}], got {v!r}")
    return v


def check_path(path, cfg: GameConfig) -> list[list[int]]:
    """The bubble path as stored: [[x, y, t_ms], …] in the frame, times rising by at least the
    bubble interval (1 ms rounding allowed), within the round, no position repeated in a row."""
    if not isinstance(path, list):
        raise Invalid("path must be a list of [x, y, t_ms]")
    if len(path) > cfg.max_bubbles:
        raise Invalid(f"path has {len(path)} bubbles; a {cfg.seconds:g} s round holds at most "
                      f"{cfg.max_bubbles}")
    out, prev = [], None
    for k, p in enumerate(path):
        if not isinstance(p, list) or len(p) != 3:
            raise Invalid(f"path[{k}] must be [x, y, t_ms]")
        x = _int_in(p[0], 0, FRAME - 1, f"path[{k}] x")
        y = _int_in(p[1], 0, FRAME - 1, f"path[{k}] y")
        t = _int_in(p[2], 0, int(cfg.round_ms), f"path[{k}] t_ms")
        if prev is not None:
            if t - prev[2] < cfg.interval_ms - 1:
                raise Invalid(f"path[{k}] t_ms {t}: bubbles come at most one per "
                              f"{cfg.interval_ms:g} ms (previous at {prev[2]})")
            if (x, y) == (prev[0], prev[1]):
                raise Invalid(f"path[{k}] repeats the previous position")
        prev = [x, y, t]
        out.append(prev)
    return out


def check_queries(queries, path: list, outcome: str, image: dict,
                  cfg: GameConfig) -> list[dict]:
    """The partner's answers: one after every ``query_every`` bubbles, each recognized flag
    recomputed from its top 5; the outcome must be what they imply."""
    if not isinstance(queries, list):
        raise Invalid("queries must be a list")
    n_due = len(path) // cfg.query_every
    if len(queries) > n_due:
        raise Invalid(f"{len(queries)} queries for {len(path)} bubbles; the partner is asked "
                      f"after every {cfg.query_every}")
    out = []
    for k, q in enumerate(queries):
        if not isinstance(q, dict) or set(q) != QUERY_FIELDS:
            raise Invalid(f"queries[{k}] must have exactly {sorted(QUERY_FIELDS)}")
        n = _int_in(q["n_bubbles"], 1, cfg.max_bubbles, f"queries[{k}].n_bubbles")
        if n != cfg.query_every * (k + 1):
            raise Invalid(f"queries[{k}].n_bubbles must be {cfg.query_every * (k + 1)}, got {n}")
        top5 = q["top5"]
        if not isinstance(top5, list) or len(top5) != 5 or len(set(
                _int_in(c, 0, 999, f"queries[{k}].top5") for c in top5)) != 5:
            raise Invalid(f"queries[{k}].top5 must be 5 different ImageNet classes 0-999")
        if type(q["recognized"]) is not bool:
            raise Invalid(f"queries[{k}].recognized must be true or false")
        if q["recognized"] != is_recognized(top5, image["class_index"], image["category"]):
            raise Invalid(f"queries[{k}].recognized does not follow from its top 5")
        out.append({"n_bubbles": n, "top5": top5, "recognized": q["recognized"]})
    hits = [k for k, q in enumerate(out) if q["recognized"]]
    if outcome == "recognized":
        if hits != [len(out) - 1] or not out:
            raise Invalid("a recognized round ends at its first recognizing query")
        if len(path) != out[-1]["n_bubbles"]:
            raise Invalid("a recognized round's path ends with the bubble its query saw")
    elif hits:
        raise Invalid(f"a {outcome} round cannot have a recognizing query")
    elif outcome == "timeout" and len(out) != n_due:
        raise Invalid(f"a timed-out round answers every query due ({n_due}), got {len(out)}")
    return out


def check_round(body, assigned: list[str], cfg: GameConfig) -> dict:
    """A round the page sent → the values to store; raises Invalid naming what is wrong."""
    if not isinstance(body, dict):
        raise Invalid("a round must be a JSON object")
    unknown = set(body) - ROUND_FIELDS
    missing = ROUND_FIELDS - set(body)
    if unknown or missing:
        raise Invalid(f"round fields: unknown {sorted(unknown)}, missing {sorted(missing)}")
    position = _int_in(body["position"], 0, max(len(assigned) - 1, 0), "position")
    if not assigned or body["image_id"] != assigned[position]:
        raise Invalid(f"image_id must be the image of position {position} of your session")
    image = cfg.image(assigned[position])
    outcome = body["outcome"]
    if outcome not in OUTCOMES:
        raise Invalid(f"outcome must be one of {', '.join(OUTCOMES)}")
    if not isinstance(body["timestamp_utc"], str) or not ISO_UTC.match(body["timestamp_utc"]):
        raise Invalid("timestamp_utc must be an ISO-8601 UTC time")
    path = check_path(body["path"], cfg)
    queries = check_queries(body["queries"], path, outcome, image, cfg)
    points = points_for(path[-1][2], cfg.round_ms) if outcome == "recognized" else 0
    if body["points"] != points:
        raise Invalid(f"points must be {points} for this round, got {body['points']!r}")
    return {"position": position, "image_id": image["image_id"], "outcome": outcome,
            "points": points, "path": path, "queries": queries,
            "client_utc": body["timestamp_utc"]}
