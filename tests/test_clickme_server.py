"""The ClickMe game's server side: even image assignment, every round checked (path in the
frame, times rising by the bubble interval and within the round, queries consistent with the
partner's top 5, points), stored once; export-clicks; build-clickme's refusals."""

from __future__ import annotations

import csv
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from starlette.testclient import TestClient

from experiment.online.clickme_build import build_game
from experiment.online.clickme_export import export_clicks
from experiment.online.clickme_rules import points_for
from experiment.online.config import ServerLimits
from experiment.online.serve import create_site_app
from stimuli.click_maps import CLICKS_COLUMNS, read_clicks
from suite.command_line import dispatch
from suite.errors import InputError

ADMIN = "admin-token-for-tests-0123456789"
REPO = Path(__file__).resolve().parents[1]
# image_id, category, class_index ('' = none): the first is the practice image
IMAGES = [("prac", "animal", 1), ("dog", "animal", 207), ("car", "non-animal", 817),
          ("cat", "animal", None), ("cup", "non-animal", None), ("owl", "animal", 24),
          ("bus", "non-animal", 779)]


def fake_partner(path: Path) -> Path:
    """Bytes shaped like an ONNX file (the server never runs the partner; the page does)."""
    path.write_bytes(b"\x08\x07" + bytes(4096))
    return path


def make_site(root: Path, per_participant: int | None = 2, seconds: float = 7.0) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    lines = ["image,image_id,category,class_index"]
    rng = np.random.default_rng(0)
    for image_id, cat, cls in IMAGES:
        Image.fromarray(rng.integers(0, 255, (300, 200, 3), dtype=np.uint8)).save(
            root / f"{image_id}.png")
        lines.append(f"{image_id}.png,{image_id},{cat},{'' if cls is None else cls}")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    build_game(root / "manifest.csv", root / "site", fake_partner(root / "partner.onnx"),
               seconds=seconds, per_participant=per_participant, completion_code="C0DE")
    return root / "site"


@pytest.fixture()
def game(tmp_path):
    site = make_site(tmp_path / "g")
    app = create_site_app(site, tmp_path / "game.sqlite", ADMIN)
    with TestClient(app) as client:
        yield client, app


def start(client, pid: str) -> dict:
    r = client.post("/api/session", json={"params": {"PROLIFIC_PID": pid, "SESSION_ID": "s" + pid,
                                                     "STUDY_ID": "x"}})
    assert r.status_code == 201, r.text
    return r.json()


def stroke(n: int, x0: int = 40, y0: int = 40, dt: int = 50) -> list[list[int]]:
    return [[x0 + k, y0 + (k % 3), dt * k] for k in range(n)]


def top5_for(item: dict, hit: bool) -> list[int]:
    """A top 5 that recognizes ``item`` (or not) by the game's rule."""
    cls = item["class_index"]
    if cls is not None:
        return [cls, 500, 501, 502, 503] if hit else [500, 501, 502, 503, 504]
    animal = item["category"] == "animal"
    first = 5 if animal == hit else 600   # 5 is an animal class, 600 is not
    return [first, 601, 602, 603, 604]


def round_body(item: dict, outcome: str = "timeout", n: int = 25, **changes) -> dict:
    path = stroke(n)
    queries = [{"n_bubbles": 10 * (k + 1), "top5": top5_for(item, False), "recognized": False}
               for k in range(n // 10)]
    points = 0
    if outcome == "recognized":
        queries[-1] = {**queries[-1], "top5": top5_for(item, True), "recognized": True}
        points = points_for(path[-1][2], 7000.0)
    body = {"position": item["position"], "image_id": item["image_id"], "outcome": outcome,
            "points": points, "path": path, "queries": queries,
            "timestamp_utc": "2026-01-01T00:00:00.000Z"}
    body.update(changes)
    return body


def post(client, session: dict, body) -> object:
    return client.post("/api/rounds", json=body,
                       headers={"authorization": "Bearer " + session["token"]})


def test_session_gets_its_images_and_the_practice_one_is_not_among_them(game):
    client, _ = game
    s = start(client, "p1")
    assert [r["position"] for r in s["rounds"]] == [0, 1]
    assert "prac" not in {r["image_id"] for r in s["rounds"]}
    assert s["config"]["practice"]["url"] == "practice.png"
    assert "completion_code" not in s["config"]


def test_images_collect_players_evenly_under_concurrent_arrivals(tmp_path):
    site = make_site(tmp_path / "g", per_participant=4)
    # 21 arrivals from one test client: the per-client start limit is not what is tested here
    app = create_site_app(site, tmp_path / "game.sqlite", ADMIN,
                          limits=ServerLimits(sessions_per_client=0))
    with TestClient(app) as client, ThreadPoolExecutor(8) as pool:
        sessions = list(pool.map(lambda i: start(client, f"w{i}"), range(21)))
        status = client.get("/api/admin/status",
                            headers={"authorization": "Bearer " + ADMIN}).json()
    counts = status["players_per_image"]
    assert sum(counts.values()) == 21 * 4
    assert max(counts.values()) - min(counts.values()) <= 1
    assert all(len({r["image_id"] for r in s["rounds"]}) == 4 for s in sessions)


@pytest.mark.parametrize("outcome", ["timeout", "recognized", "skip"])
def test_a_valid_round_is_stored_once(game, outcome):
    client, app = game
    s = start(client, "p1")
    body = round_body(s["rounds"][0], outcome, n=30 if outcome == "recognized" else 25)
    assert post(client, s, body).status_code == 201
    again = post(client, s, body)
    assert again.status_code == 409 and again.json()["duplicate"] is True
    rows = app.state.game.rounds.round_rows()
    assert len(rows) == 1
    assert rows[0]["outcome"] == outcome
    assert rows[0]["points"] == (points_for(1450, 7000.0) if outcome == "recognized" else 0)
    assert json.loads(rows[0]["path"]) == body["path"]


BAD_ROUNDS = {
    "x outside the frame": lambda b: {**b, "path": [[256, 3, 0]] + b["path"][1:]},
    "negative y": lambda b: {**b, "path": [[3, -1, 0]] + b["path"][1:]},
    "time going back": lambda b: {**b, "path": b["path"][:5] + [[1, 1, 10]] + b["path"][6:]},
    "bubbles faster than 50 ms": lambda b: {**b, "path": stroke(25, dt=20)},
    "past the round's 7 s": lambda b: {**b, "path": stroke(25, dt=300), "queries": b["queries"]},
    "more bubbles than 7 s hold": lambda b: {**b, "path": stroke(142), "queries": []},
    "a repeated position": lambda b: {**b, "path": [[5, 5, 0], [5, 5, 50]] + [
        [6 + k, 5, 100 + 50 * k] for k in range(23)]},
    "a float coordinate": lambda b: {**b, "path": [[1.5, 2, 0]] + b["path"][1:]},
    "pixels instead of a path": lambda b: {**b, "pixels": "AAAA"},
    "another image's id": lambda b: {**b, "image_id": "prac"},
    "wrong points": lambda b: {**b, "points": 5},
    "a query missing at time-out": lambda b: {**b, "queries": b["queries"][:1]},
    "a recognized flag its top 5 contradicts": lambda b: {**b, "queries": [
        {**b["queries"][0], "recognized": True}] + b["queries"][1:]},
    "a query at the wrong bubble": lambda b: {**b, "queries": [
        {**b["queries"][0], "n_bubbles": 9}] + b["queries"][1:]},
    "an unknown outcome": lambda b: {**b, "outcome": "won"},
}


@pytest.mark.parametrize("name", list(BAD_ROUNDS))
def test_a_bad_round_is_refused_and_nothing_stored(game, name):
    client, app = game
    s = start(client, "p1")
    body = BAD_ROUNDS[name](round_body(s["rounds"][0]))
    r = post(client, s, body)
    assert r.status_code == 422, (name, r.text)
    assert app.state.game.rounds.round_rows() == []
    rejected = client.get("/api/admin/rejected", headers={"authorization": "Bearer " + ADMIN})
    assert len(list(csv.DictReader(rejected.text.splitlines()))) == 1


def test_a_recognized_round_must_end_at_its_query(game):
    client, _ = game
    s = start(client, "p1")
    body = round_body(s["rounds"][0], "recognized", n=30)
    body["path"] = stroke(32)     # bubbles kept after the partner recognized
    assert post(client, s, body).status_code == 422


def test_an_image_without_class_is_judged_by_the_animal_decision(tmp_path):
    site = make_site(tmp_path / "g", per_participant=6)
    app = create_site_app(site, tmp_path / "game.sqlite", ADMIN)
    with TestClient(app) as client:
        s = start(client, "p1")
        item = next(r for r in s["rounds"] if r["class_index"] is None)
        body = round_body(item, "recognized", n=20)
        assert post(client, s, body).status_code == 201
        wrong = round_body(next(r for r in s["rounds"] if r["image_id"] == "cup"), "recognized",
                           n=20)
        wrong["queries"][-1]["top5"] = [5, 601, 602, 603, 604]  # says animal for a cup
        assert post(client, s, wrong).status_code == 422


def test_completion_needs_every_round_and_gives_the_code(game):
    client, _ = game
    s = start(client, "p1")
    auth = {"authorization": "Bearer " + s["token"]}
    post(client, s, round_body(s["rounds"][0]))
    missing = client.post("/api/complete", json={}, headers=auth)
    assert missing.status_code == 409 and missing.json()["missing"] == [1]
    post(client, s, round_body(s["rounds"][1], "skip", n=3))
    done = client.post("/api/complete", json={}, headers=auth)
    assert done.status_code == 403 and done.json()["too_fast"]   # 1.2 s of paths sent in ms
    resumed = client.post("/api/session", json={"token": s["token"]}).json()
    assert resumed["done"] == [0, 1]


def test_export_clicks_writes_the_maps_format(game, tmp_path):
    client, app = game
    s = start(client, "p1")
    post(client, s, round_body(s["rounds"][0], "recognized", n=20))
    post(client, s, round_body(s["rounds"][1], "skip", n=3))
    db = Path(app.state.store.path)
    out = tmp_path / "clicks.csv"
    assert dispatch("python -m experiment", {"export-clicks": (
        "experiment.online.clickme_export", "")}, ["export-clicks", "--db", str(db),
                                                   "--out", str(out)]) == 0
    header = out.read_text().splitlines()[0].split(",")
    assert tuple(header) == CLICKS_COLUMNS
    rounds = read_clicks(out)
    assert [(r.player_id, r.round_id, r.outcome, len(r.path)) for r in rounds] == [
        ("p1", "sp1-1", "recognized", 20), ("p1", "sp1-2", "skip", 3)]
    via_http = client.get("/api/admin/clicks", headers={"authorization": "Bearer " + ADMIN})
    assert via_http.text.replace("\r\n", "\n") == out.read_text().replace("\r\n", "\n")
    queries = tmp_path / "queries.csv"
    assert export_clicks(db, queries, queries=True) == 2


def test_export_clicks_refuses_the_database_as_out(game):
    _, app = game
    db = Path(app.state.store.path)
    with pytest.raises(InputError):
        export_clicks(db, db)


def test_build_refuses_a_file_that_is_not_onnx(tmp_path):
    site = make_site(tmp_path / "g")
    bad = tmp_path / "partner.txt"
    bad.write_text("not a model" * 200)
    with pytest.raises(InputError, match="not an ONNX model"):
        build_game(tmp_path / "g" / "manifest.csv", tmp_path / "other", bad)
    assert not (tmp_path / "other").exists()
    assert (site / "clickme.json").is_file()


def test_build_refuses_more_images_per_participant_than_the_pool(tmp_path):
    make_site(tmp_path / "g")
    with pytest.raises(InputError, match="only 6 images"):
        build_game(tmp_path / "g" / "manifest.csv", tmp_path / "s2",
                   tmp_path / "g" / "partner.onnx", per_participant=7)


def test_the_page_may_compile_webassembly_and_nothing_else_changes(game):
    client, _ = game
    csp = client.get("/").headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self' 'wasm-unsafe-eval'" in csp
    assert client.get("/vendor/ort/ort-wasm-simd-threaded.wasm").headers[
        "content-type"] == "application/wasm"
    assert client.get("/clickme.json").status_code == 404
