"""The session protocol: a lost start reply, interrupted trials, refused trials kept for
researchers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pytest
from starlette.testclient import TestClient

from analysis.exclusions import apply_exclusions
from experiment.__main__ import COMMANDS
from experiment.online.build import build_site
from experiment.online.config import ServerLimits, StudyConfig
from experiment.online.export import export_trials
from experiment.online.server import create_app
from experiment.online.store import StudyStore
from experiment.schema import OPTIONAL_TRIAL_COLUMNS, TRIAL_COLUMNS, read_rows
from suite.command_line import dispatch
from tests.support.sample_study import make_lists, make_stimulus_set

ADMIN = "admin-token-for-tests-0123456789"
NONCE = "n" * 20 + "0123456789abcdef"
PROLIFIC = {"PROLIFIC_PID": "p77", "SESSION_ID": "s77", "STUDY_ID": "st"}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("session")
    manifest = make_stimulus_set(root / "set", n_images=4)
    lists = make_lists(manifest, root / "lists.csv", n_lists=3, stimuli_dir=root / "set")
    config = StudyConfig(study_id="session-test", lists=(), completion_code="CODE-7")
    return build_site([lists], root / "set", root / "site", config)


@pytest.fixture
def app(site, tmp_path):
    # trials are posted at once here, so no minimum duration
    return create_app(site, tmp_path / "study.sqlite", ADMIN,
                      limits=ServerLimits(min_duration_factor=0))


@pytest.fixture
def client(app):
    with TestClient(app) as c:
        yield c


def begin(client, params=None, nonce=None):
    body = {"params": params or {}, "client": {"refresh_hz": 60}}
    if nonce is not None:
        body["nonce"] = nonce
    return client.post("/api/session", json=body)


def trial_body(t: dict, **changes) -> dict:
    body = {"seq": t["seq"], "block": t["block"], "trial": t["trial"],
            "practice": t["practice"], "stimulus_id": t["stimulus_id"], "response": "animal",
            "key": "f", "rt_ms": 421.5, "timeout": 0, "fixation_ms": 1316.7,
            "frames_intended": 24, "frames_shown": 24, "refresh_hz": 60.0, "dropped_frames": 0,
            "timestamp_utc": "2024-05-01T10:00:00.123Z", "timing": {"t_onset": 1234.5}}
    body.update(changes)
    return body


def auth(token: str) -> dict:
    return {"authorization": "Bearer " + token}


# ---- item 12: a start whose reply was lost

@pytest.mark.parametrize("params", [PROLIFIC, {}], ids=["prolific", "anonymous"])
def test_retried_start_with_the_same_nonce_gets_the_same_session(client, app, params):
    first = begin(client, params, NONCE)
    assert first.status_code == 201
    client.post("/api/trials", json=trial_body(first.json()["trials"][0]),
                headers=auth(first.json()["token"]))
    # the page never saw that reply; it retries with the nonce it kept
    again = begin(client, params, NONCE)
    assert again.status_code == 200, again.text
    a, b = first.json(), again.json()
    assert (b["observer_id"], b["session_id"], b["list_id"], b["done"]) == (
        a["observer_id"], a["session_id"], a["list_id"], [0])
    assert app.state.store.list_counts() == {a["list_id"]: 1}  # no second session counted
    # the new token writes into that session
    r = client.post("/api/trials", json=trial_body(b["trials"][1]), headers=auth(b["token"]))
    assert r.status_code == 201
    assert [row["observer_id"] for row in app.state.store.trial_rows()] == [a["observer_id"]] * 2


def test_another_browser_with_the_same_id_is_still_refused(client, app):
    assert begin(client, PROLIFIC, NONCE).status_code == 201
    assert begin(client, PROLIFIC).status_code == 409                     # no nonce
    assert begin(client, PROLIFIC, "x" * 32).status_code == 409           # another browser's
    assert begin(client, {**PROLIFIC, "PROLIFIC_PID": "p78"}, NONCE).status_code == 409
    assert sum(app.state.store.list_counts().values()) == 1


def test_nonce_is_stored_hashed(client, app):
    begin(client, PROLIFIC, NONCE)
    with sqlite3.connect(app.state.store.path) as conn:
        dump = "\n".join(conn.iterdump())
    assert NONCE not in dump


@pytest.mark.parametrize("nonce", ["short", 5, "x" * 129, "bad nonce with spaces!!"])
def test_malformed_nonce_refused(client, app, nonce):
    assert begin(client, PROLIFIC, nonce).status_code == 422
    assert app.state.store.list_counts() == {}


def test_database_from_before_the_nonce_gains_the_column(site, tmp_path):
    db = tmp_path / "old.sqlite"
    with sqlite3.connect(db) as conn:  # the sessions and trials tables as first released
        conn.execute("CREATE TABLE sessions (id INTEGER PRIMARY KEY, token_hash TEXT NOT NULL "
                     "UNIQUE, observer_id TEXT NOT NULL, external INTEGER NOT NULL, source TEXT "
                     "NOT NULL, session_label TEXT NOT NULL, study_label TEXT NOT NULL, list_id "
                     "TEXT NOT NULL, created_utc TEXT NOT NULL, completed_utc TEXT, client TEXT "
                     "NOT NULL)")
        cols = ", ".join(f"{c} TEXT" for c in TRIAL_COLUMNS)
        conn.execute(f"CREATE TABLE trials (session INTEGER NOT NULL, seq INTEGER NOT NULL, "
                     f"{cols}, client_timing TEXT NOT NULL, received_utc TEXT NOT NULL, "
                     "PRIMARY KEY (session, seq))")
    with TestClient(create_app(site, db, ADMIN)) as c:
        s = begin(c, PROLIFIC, NONCE)
        assert s.status_code == 201 and begin(c, PROLIFIC, NONCE).status_code == 200
        body = trial_body(s.json()["trials"][0], interrupted=1)
        assert c.post("/api/trials", json=body,
                      headers=auth(begin(c, PROLIFIC, NONCE).json()["token"])).status_code == 201


# ---- item 13: a trial interrupted by a hidden tab

def hidden_trial(t: dict) -> dict:
    """What the page sends for a trial whose tab was hidden during fixation for a minute."""
    return trial_body(t, interrupted=1, response="none", key=None, rt_ms=None, timeout=1,
                      fixation_ms=None, frames_shown=None, dropped_frames=3660)


def test_interrupted_trial_is_stored_flagged_and_completion_still_works(client, app, tmp_path):
    s = begin(client, PROLIFIC, NONCE).json()
    head = auth(s["token"])
    long_fixation = trial_body(s["trials"][0], fixation_ms=61000.0, interrupted=1)
    long_image = trial_body(s["trials"][1], frames_shown=300, interrupted=1)
    assert client.post("/api/trials", json=long_fixation, headers=head).status_code == 201
    assert client.post("/api/trials", json=long_image, headers=head).status_code == 201
    assert client.post("/api/trials", json=hidden_trial(s["trials"][2]),
                       headers=head).status_code == 201
    for t in s["trials"][3:]:
        assert client.post("/api/trials", json=trial_body(t), headers=head).status_code == 201
    done = client.post("/api/complete", headers=head)
    assert done.status_code == 200 and done.json()["completion_code"] == "CODE-7"
    out = tmp_path / "trials.csv"
    export_trials(app.state.store.path, out)
    rows = read_rows(out, TRIAL_COLUMNS + OPTIONAL_TRIAL_COLUMNS)
    assert [r["interrupted"] for r in rows] == ["1", "1", "1"] + ["0"] * (len(rows) - 3)
    assert (rows[2]["fixation_ms"], rows[2]["frames_shown"], rows[2]["timeout"]) == ("", "", "1")
    assert rows[0]["fixation_ms"] == "61000.0"


def test_unflagged_overlong_trial_is_still_refused(client, app):
    s = begin(client, PROLIFIC, NONCE).json()
    for body in (trial_body(s["trials"][0], fixation_ms=61000.0),
                 trial_body(s["trials"][0], frames_shown=300),
                 trial_body(s["trials"][0], interrupted=2),
                 trial_body(s["trials"][0], interrupted=1, rt_ms=700.0)):
        assert client.post("/api/trials", json=body, headers=auth(s["token"])).status_code == 422
    assert app.state.store.n_trials() == 0


def test_analysis_drops_interrupted_trials():
    base = {"dataset": "suite", "observer_type": "human", "correct": 1, "timeout": 0,
            "rt_ms": 400.0, "practice": 0, "level": float("nan"), "increasing": True}
    df = pd.DataFrame([{**base, "observer_id": "a", "interrupted": i} for i in
                       ("0", "1", "0", "0", "")])
    kept, report = apply_exclusions(df)
    assert len(kept) == 4 and report.trials_dropped["interrupted"] == 1
    assert "1" not in set(kept["interrupted"])


# ---- item 26: refused trials are kept server-side, flagged

def test_refused_trial_is_kept_for_the_researchers(client, app, tmp_path):
    s = begin(client, PROLIFIC, NONCE).json()
    bad = trial_body(s["trials"][0], rt_ms=900.0)
    assert client.post("/api/trials", json=bad, headers=auth(s["token"])).status_code == 422
    assert app.state.store.n_trials() == 0
    r = client.get("/api/admin/rejected", headers=auth(ADMIN))
    assert r.status_code == 200
    lines = r.text.splitlines()
    assert lines[0] == "observer_id,session_id,list_id,seq,status,error,received_utc,body"
    assert len(lines) == 2 and lines[1].startswith(f"p77,s77,{s['list_id']},0,422,")
    assert "rt_ms" in lines[1] and "900.0" in lines[1]
    assert client.get("/api/admin/rejected", headers=auth(s["token"])).status_code == 403
    out = tmp_path / "rejected.csv"
    code = dispatch("python -m experiment", COMMANDS, ["export", "--db",
                                                       str(app.state.store.path), "--out",
                                                       str(out), "--rejected"])
    assert code == 0
    (row,) = read_rows(out, ("observer_id", "seq", "status", "error", "body"))
    assert (row["observer_id"], row["seq"], row["status"]) == ("p77", "0", "422")
    assert '"rt_ms": 900.0' in row["body"]


def test_refused_trials_per_session_are_capped(site, tmp_path, monkeypatch):
    import experiment.online.store as store_module
    monkeypatch.setattr(store_module, "MAX_REJECTED_PER_SESSION", 3)
    store = StudyStore(tmp_path / "s.sqlite", study_id="x")
    _, session, _ = store.assign(("L0",), "o", False, "anonymous", "l", "", {})
    kept = [store.add_rejected(session, 422, "bad", {"seq": i}) for i in range(5)]
    assert kept == [True, True, True, False, False]
    assert [r["seq"] for r in store.rejected_rows()] == [0, 1, 2]
