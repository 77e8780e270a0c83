"""The study server: balanced atomic assignment, resume, idempotent storage, and every bad input
refused."""

from __future__ import annotations

import asyncio
import json
import socket
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from experiment.__main__ import COMMANDS
from experiment.online.build import build_site
from experiment.online.config import ServerLimits, StudyConfig
from experiment.online.server import create_app
from experiment.schema import OPTIONAL_TRIAL_COLUMNS, TRIAL_COLUMNS, read_rows
from suite.command_line import dispatch
from suite.errors import InputError
from tests.support.local_server import free_port, serve_in_thread
from tests.support.permissions import unwritable
from tests.support.sample_study import make_lists, make_stimulus_set

ADMIN = "admin-token-for-tests-0123456789"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("server")
    manifest = make_stimulus_set(root / "set", n_images=4)
    lists = make_lists(manifest, root / "lists.csv", n_lists=3, stimuli_dir=root / "set")
    config = StudyConfig(study_id="server-test", lists=(), completion_code="CODE-9")
    return build_site([lists], root / "set", root / "site", config)


@pytest.fixture
def app(site, tmp_path):
    return create_app(site, tmp_path / "study.sqlite", ADMIN)


@pytest.fixture
def client(app):
    with TestClient(app) as c:
        yield c


def start(client, **params) -> dict:
    r = client.post("/api/session", json={"params": params, "client": {"refresh_hz": 60}})
    assert r.status_code == 201, r.text
    return r.json()


def trial_body(t: dict, **changes) -> dict:
    body = {"seq": t["seq"], "block": t["block"], "trial": t["trial"],
            "practice": t["practice"], "stimulus_id": t["stimulus_id"], "response": "animal",
            "key": "f", "rt_ms": 421.5, "timeout": 0, "fixation_ms": 1316.7,
            "frames_intended": 24, "frames_shown": 24, "refresh_hz": 60.0, "dropped_frames": 0,
            "timestamp_utc": "2024-05-01T10:00:00.123Z", "timing": {"t_onset": 1234.5}}
    body.update(changes)
    return body


def auth(session: dict) -> dict:
    return {"authorization": "Bearer " + session["token"]}


def n_stored(app) -> int:
    return app.state.store.n_trials()


def backdate(app, session: dict, seconds: float) -> None:
    """Move a session's start ``seconds`` into the past, as if its participant had been busy."""
    store = app.state.store
    (sid,) = store._conn().execute("SELECT id FROM sessions WHERE session_label=?",
                                   (session["session_id"],)).fetchone()
    started = datetime.fromisoformat(store._conn().execute(
        "SELECT created_utc FROM sessions WHERE id=?", (sid,)).fetchone()[0])
    earlier = (started - timedelta(seconds=seconds)).isoformat(timespec="milliseconds")
    store._conn().execute("UPDATE sessions SET created_utc=? WHERE id=?",
                          (earlier.replace("+00:00", "Z"), sid))


def test_database_is_in_wal_mode(app):
    assert app.state.store.journal_mode() == "wal"


def test_trial_stored_with_list_fields_from_the_server(client, app):
    s = start(client, PROLIFIC_PID="p1", SESSION_ID="s1", STUDY_ID="st")
    t = s["trials"][1]
    r = client.post("/api/trials", json=trial_body(t), headers=auth(s))
    assert r.status_code == 201 and r.json() == {"stored": 1}
    (row,) = app.state.store.trial_rows()
    assert (row["observer_id"], row["session_id"], row["list_id"]) == ("p1", "s1", s["list_id"])
    assert (row["image_id"], row["category"], row["level_index"]) == (
        t["image_id"], t["category"], str(t["level_index"]))
    assert row["correct"] == str(int(t["category"] == "animal"))
    assert (row["observer_type"], row["runner"], row["rt_ms"]) == ("human", "web", "421.5")


def test_returning_participant_resumes_same_list(client):
    s = start(client)
    client.post("/api/trials", json=trial_body(s["trials"][0]), headers=auth(s))
    again = client.post("/api/session", json={"token": s["token"]})
    assert again.status_code == 200
    assert (again.json()["list_id"], again.json()["done"]) == (s["list_id"], [0])


def test_known_platform_id_without_token_is_refused(client):
    start(client, workerId="W9", assignmentId="A9", hitId="H9")
    r = client.post("/api/session", json={"params": {"workerId": "W9", "assignmentId": "A9"}})
    assert r.status_code == 409


def test_mturk_preview_gets_no_list(client, app):
    r = client.post("/api/session", json={"params": {
        "workerId": "W1", "assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE"}})
    assert r.status_code == 422
    assert app.state.store.list_counts() == {}


def test_balanced_rotation_under_concurrency(site, tmp_path):
    # 31 arrivals from one address: the start limit is lifted, as for a lab behind one NAT
    app = create_app(site, tmp_path / "study.sqlite", ADMIN,
                     limits=ServerLimits(sessions_per_client=0))

    async def arrive(client):
        r = await client.post("session", json={"params": {}})
        return r.json()["list_id"]

    async def crowd(url):
        async with httpx.AsyncClient(base_url=url + "api/", timeout=30) as client:
            return await asyncio.gather(*(arrive(client) for _ in range(31)))

    with serve_in_thread(app) as url:
        got = asyncio.run(crowd(url))
    counts = app.state.store.list_counts()
    assert sum(counts.values()) == 31 and max(counts.values()) - min(counts.values()) <= 1
    assert sorted(counts) == ["L0", "L1", "L2"] and len(got) == 31


def test_concurrent_posts_and_replays_store_each_trial_once(app):
    async def participant(client, k):
        r = await client.post("session", json={"params": {"PROLIFIC_PID": f"C{k}"}})
        s = r.json()
        head = {"authorization": "Bearer " + s["token"]}
        # every trial posted twice at once (a page retrying before the first answer came back)
        posts = [client.post("trials", json=trial_body(t), headers=head)
                 for t in s["trials"] for _ in range(2)]
        return [r.status_code for r in await asyncio.gather(*posts)], len(s["trials"])

    async def crowd(url):
        async with httpx.AsyncClient(base_url=url + "api/", timeout=30) as client:
            return await asyncio.gather(*(participant(client, k) for k in range(12)))

    with serve_in_thread(app) as url:
        got = asyncio.run(crowd(url))
    n_trials = sum(n for _, n in got)
    codes = [c for statuses, _ in got for c in statuses]
    assert codes.count(201) == n_trials and codes.count(409) == n_trials
    rows = app.state.store.trial_rows()
    assert len(rows) == n_trials
    assert len({(r["observer_id"], r["block"], r["trial"], r["practice"])
                for r in rows}) == n_trials


def test_completion_code_only_when_every_trial_is_stored(client, app):
    s = start(client)
    first = client.post("/api/complete", headers=auth(s))
    assert first.status_code == 409 and first.json()["missing"] == [t["seq"] for t in s["trials"]]
    for t in s["trials"]:
        body = trial_body(t, response="none", key=None, rt_ms=None, timeout=1)
        assert client.post("/api/trials", json=body, headers=auth(s)).status_code == 201
    backdate(app, s, 60)   # the list's trials take at least 5 × 1.5 s
    done = client.post("/api/complete", headers=auth(s))
    assert done.status_code == 200 and done.json()["completion_code"] == "CODE-9"


# ---- bad input: each gets a 4xx and nothing is stored

BAD_TRIALS = {
    "rt as string": {"rt_ms": "421"},
    "seq as bool": {"seq": True},
    "seq out of range": {"seq": 99},
    "response unknown": {"response": "cat"},
    "timeout with rt": {"timeout": 1},
    "rt beyond window": {"rt_ms": 700.0},
    "negative rt": {"rt_ms": -3.0},
    "NaN fixation": {"fixation_ms": float("nan")},
    "key maps elsewhere": {"key": "j"},
    "implausible refresh": {"refresh_hz": 7.0, "frames_intended": 3},
    "frames inconsistent": {"frames_intended": 30},
    "bad timestamp": {"timestamp_utc": "yesterday"},
    "extra field": {"observer_id": "someone-else"},
    "timing not numbers": {"timing": {"x": "<script>"}},
}


@pytest.mark.parametrize("name", sorted(BAD_TRIALS))
def test_wrong_types_and_ranges_refused(client, app, name):
    s = start(client)
    body = trial_body(s["trials"][0], **BAD_TRIALS[name])
    r = client.post("/api/trials", content=json.dumps(body), headers={
        **auth(s), "content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert n_stored(app) == 0


def test_trial_from_another_list_refused(client, app):
    s = start(client)
    other = start(client)
    assert other["list_id"] != s["list_id"]
    t = next(o for o, mine in zip(other["trials"], s["trials"], strict=True)
             if o["stimulus_id"] != mine["stimulus_id"])
    r = client.post("/api/trials", json=trial_body(t), headers=auth(s))
    assert r.status_code == 422 and n_stored(app) == 0


def test_replayed_trial_is_409_and_stored_once(client, app):
    s = start(client)
    body = trial_body(s["trials"][0])
    assert client.post("/api/trials", json=body, headers=auth(s)).status_code == 201
    replay = client.post("/api/trials", json=trial_body(s["trials"][0], response="non-animal",
                                                        key="j"), headers=auth(s))
    assert replay.status_code == 409 and replay.json()["duplicate"] is True
    (row,) = app.state.store.trial_rows()
    assert row["response"] == "animal"


def test_malformed_json_refused(client, app):
    s = start(client)
    r = client.post("/api/trials", content=b'{"seq": 0,', headers={
        **auth(s), "content-type": "application/json"})
    assert r.status_code == 400 and n_stored(app) == 0


def test_wrong_content_type_refused(client, app):
    s = start(client)
    r = client.post("/api/trials", content=json.dumps(trial_body(s["trials"][0])),
                    headers={**auth(s), "content-type": "text/plain"})
    assert r.status_code == 415 and n_stored(app) == 0


def test_oversized_bodies_refused_with_or_without_length(client, app):
    s = start(client)
    big = json.dumps(trial_body(s["trials"][0], timing={"pad": 1} | {
        f"k{i}": i for i in range(3000)})).encode()
    headers = {**auth(s), "content-type": "application/json"}
    assert client.post("/api/trials", content=big, headers=headers).status_code == 413

    def chunks():  # no Content-Length: the limit must hold while streaming
        for i in range(0, len(big), 1000):
            yield big[i:i + 1000]
    assert client.post("/api/trials", content=chunks(), headers=headers).status_code == 413
    r = client.post("/api/session", content=b"[" * 20000, headers=headers)
    assert r.status_code == 413
    assert n_stored(app) == 0


@pytest.mark.parametrize("header", [None, "Bearer ", "Bearer not-a-real-token", "Basic abc"])
def test_missing_or_wrong_token_refused(client, app, header):
    s = start(client)
    headers = {"authorization": header} if header else {}
    r = client.post("/api/trials", json=trial_body(s["trials"][0]), headers=headers)
    assert r.status_code == 401 and n_stored(app) == 0
    assert client.post("/api/complete", headers=headers).status_code == 401


def test_admin_endpoints_need_the_admin_token(client):
    s = start(client)
    client.post("/api/trials", json=trial_body(s["trials"][0]), headers=auth(s))
    assert client.get("/api/admin/export").status_code == 401
    assert client.get("/api/admin/export", headers=auth(s)).status_code == 403
    r = client.get("/api/admin/export", headers={"authorization": "Bearer " + ADMIN})
    assert r.status_code == 200
    lines = r.text.splitlines()
    assert lines[0] == ",".join(TRIAL_COLUMNS + OPTIONAL_TRIAL_COLUMNS) and len(lines) == 2
    status = client.get("/api/admin/status", headers={"authorization": "Bearer " + ADMIN})
    assert status.json()["trials"] == 1


def _raw_get(url: str, path: str) -> tuple[int, bytes]:
    host, port = url.split("//")[1].rstrip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return int(data.split(b" ", 2)[1]), data


@pytest.mark.parametrize("path", [
    "/../study.json", "/%2e%2e/study.json", "/stimuli/..%2f..%2fstudy.json",
    "/stimuli/../../lists/L0.json", "/..%2f..%2f..%2fetc%2fpasswd", "//etc/passwd",
])
def test_path_traversal_refused(app, path):
    with serve_in_thread(app) as url:
        status, data = _raw_get(url, path)
        ok_status, ok = _raw_get(url, "/index.html")
    assert 400 <= status < 500
    assert b"study_id" not in data and b"root:" not in data
    assert ok_status == 200 and b"experiment.js" in ok


def test_db_inside_served_folder_refused(site):
    with pytest.raises(InputError, match="served"):
        create_app(site, site / "public" / "x.sqlite", ADMIN)


def test_export_command_writes_trial_table(client, app, tmp_path):
    s = start(client)
    for t in s["trials"][:2]:
        client.post("/api/trials", json=trial_body(t), headers=auth(s))
    out = tmp_path / "out" / "trials.csv"
    db = app.state.store.path
    assert dispatch("python -m experiment", COMMANDS, ["export", "--db", str(db),
                                                       "--out", str(out)]) == 0
    rows = read_rows(out, TRIAL_COLUMNS)
    assert [r["stimulus_id"] for r in rows] == [t["stimulus_id"] for t in s["trials"][:2]]
    missing = dispatch("python -m experiment", COMMANDS,
                       ["export", "--db", str(tmp_path / "none.sqlite"), "--out", str(out)])
    assert missing == 2


# ---- issue 12: nesting, content type, limits

DEEP = b"[" * 3000 + b"]" * 3000


def test_deeply_nested_session_body_is_400(client, app):
    r = client.post("/api/session", content=DEEP, headers={"content-type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["error"]
    assert app.state.store.list_counts() == {}


def test_deeply_nested_trial_body_is_400(client, app):
    s = start(client)
    r = client.post("/api/trials", content=DEEP, headers={
        **auth(s), "content-type": "application/json"})
    assert r.status_code == 400 and n_stored(app) == 0


def test_deeply_nested_client_field_is_refused(client, app):
    # parses (depth < the recursion limit) but must not reach json.dumps unchecked
    body = b'{"params": {}, "client": {"x": ' + b"[" * 900 + b"]" * 900 + b"}}"
    r = client.post("/api/session", content=body, headers={"content-type": "application/json"})
    assert r.status_code in (400, 422)
    assert app.state.store.list_counts() == {}


@pytest.mark.parametrize("ctype", ["Application/JSON", "application/json; charset=utf-8",
                                   "APPLICATION/JSON;charset=UTF-8"])
def test_content_type_is_case_insensitive_and_takes_parameters(client, app, ctype):
    r = client.post("/api/session", content=b'{"params": {}}', headers={"content-type": ctype})
    assert r.status_code == 201, r.text
    s = r.json()
    r = client.post("/api/trials", content=json.dumps(trial_body(s["trials"][0])),
                    headers={**auth(s), "content-type": ctype})
    assert r.status_code == 201 and n_stored(app) == 1


def limited_client(site, tmp_path, **limits):
    app = create_app(site, tmp_path / "limited.sqlite", ADMIN, limits=ServerLimits(**limits))
    return app, TestClient(app)


def test_session_starts_are_limited_per_client_and_logged(site, tmp_path, caplog):
    app, client = limited_client(site, tmp_path, sessions_per_client=3, session_window_s=600)
    with client:
        codes = [client.post("/api/session", json={"params": {}}).status_code for _ in range(5)]
        assert codes == [201, 201, 201, 429, 429]
        r = client.post("/api/session", json={"params": {}})
        assert 590 <= int(r.headers["retry-after"]) <= 601
        # without --trust-proxy a client cannot escape the limit by sending X-Forwarded-For
        spoofed = client.post("/api/session", json={"params": {}},
                              headers={"x-forwarded-for": "203.0.113.9"})
        assert spoofed.status_code == 429
    assert sum(app.state.store.list_counts().values()) == 3
    assert "refused a session start from testclient" in caplog.text


def test_resuming_is_not_limited(site, tmp_path):
    _, client = limited_client(site, tmp_path, sessions_per_client=1)
    with client:
        s = start(client)
        for _ in range(3):
            assert client.post("/api/session", json={"token": s["token"]}).status_code == 200
        assert client.post("/api/session", json={"params": {}}).status_code == 429


def test_a_lost_reply_retry_is_not_refused_by_the_start_limit(site, tmp_path):
    # the retry of a start whose reply was lost carries the page's nonce: it is not a new
    # session, so a client at its limit still gets its session back (item 12 with item 15)
    app, client = limited_client(site, tmp_path, sessions_per_client=1)
    nonce = "n" * 24
    with client:
        first = client.post("/api/session", json={"params": {}, "nonce": nonce})
        assert first.status_code == 201
        assert client.post("/api/session", json={"params": {}}).status_code == 429
        retry = client.post("/api/session", json={"params": {}, "nonce": nonce})
        assert retry.status_code == 200
        assert retry.json()["list_id"] == first.json()["list_id"]
        # a made-up nonce is a new session and stays limited
        assert client.post("/api/session",
                           json={"params": {}, "nonce": "m" * 24}).status_code == 429
    assert sum(app.state.store.list_counts().values()) == 1


def test_concurrent_starts_cannot_slip_past_the_limit(site, tmp_path):
    # the limit is checked and counted with no await between: a burst of concurrent starts
    # from one client gets exactly the limit's worth of sessions
    from concurrent.futures import ThreadPoolExecutor

    app, client = limited_client(site, tmp_path, sessions_per_client=5)
    with client, ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(lambda _: client.post("/api/session",
                                                    json={"params": {}}).status_code, range(24)))
    assert sorted(codes) == [201] * 5 + [429] * 19
    assert sum(app.state.store.list_counts().values()) == 5


def test_start_limit_counts_forwarded_address_only_behind_a_trusted_proxy(site, tmp_path):
    _, client = limited_client(site, tmp_path, sessions_per_client=1, trust_proxy=True)
    with client:
        def go(chain):
            return client.post("/api/session", json={"params": {}},
                               headers={"x-forwarded-for": chain}).status_code
        # the proxy appends the real address last; what the client wrote before it is ignored
        assert go("10.0.0.1, 198.51.100.1") == 201
        assert go("10.0.0.2, 198.51.100.1") == 429
        assert go("198.51.100.2") == 201


def test_start_limit_window_slides():
    from experiment.online.server import StartLimit
    limit = StartLimit(2, window_s=10.0)
    assert [limit.retry_after("a", t) for t in (0.0, 1.0)] == [0.0, 0.0]
    assert limit.retry_after("a", 5.0) == 5.0
    assert limit.retry_after("b", 5.0) == 0.0
    assert limit.retry_after("a", 10.0) == 0.0   # the start at 0 s has left the window
    assert StartLimit(0, 10.0).retry_after("a", 0.0) == 0.0


def _finish_all_trials(client, s):
    for t in s["trials"]:
        assert client.post("/api/trials", json=trial_body(t), headers=auth(s)).status_code == 201


def test_completion_faster_than_the_list_can_run_is_refused(client, app, caplog):
    s = start(client)
    _finish_all_trials(client, s)
    n = len(s["trials"])
    least = 0.9 * n * (1100 + 400) / 1000   # default factor × trials × (fixation + image)
    r = client.post("/api/complete", headers=auth(s))
    assert r.status_code == 403 and r.json()["too_fast"] is True
    assert "completion_code" not in r.json()
    assert f"the list takes at least {least:.1f} s" in caplog.text
    backdate(app, s, least - 1.0)
    assert client.post("/api/complete", headers=auth(s)).status_code == 403
    backdate(app, s, 1.5)
    done = client.post("/api/complete", headers=auth(s))
    assert done.status_code == 200 and done.json()["completion_code"] == "CODE-9"


def test_min_duration_factor_is_configurable(site, tmp_path):
    _, client = limited_client(site, tmp_path, min_duration_factor=0)
    with client:
        s = start(client)
        _finish_all_trials(client, s)
        assert client.post("/api/complete", headers=auth(s)).status_code == 200


def test_serve_on_a_busy_port_fails_before_making_the_database(site, tmp_path, capsys):
    db = tmp_path / "study.sqlite"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        rc = dispatch("python -m experiment", COMMANDS, [
            "serve", str(site), "--db", str(db), "--port", str(port), "--admin-token", ADMIN])
    out, err = capsys.readouterr()
    assert rc == 2 and not db.exists()
    assert "serving" not in out
    assert err.count("error:") == 1 and f"--port {port}" in err and "Traceback" not in err


@pytest.mark.parametrize("where", ["folder", "under a file", "unwritable"])
def test_serve_db_path_is_checked_first(site, tmp_path, capsys, where):
    (tmp_path / "a-file").write_text("x")
    locked = tmp_path / "locked"
    locked.mkdir()
    db = {"folder": tmp_path, "under a file": tmp_path / "a-file" / "study.sqlite",
          "unwritable": locked / "study.sqlite"}[where]
    with unwritable(locked):
        rc = dispatch("python -m experiment", COMMANDS, [
            "serve", str(site), "--db", str(db), "--admin-token", ADMIN, "--port",
            str(free_port())])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error:") and err.count("\n") == 1 and "--db" in err
    assert list(locked.iterdir()) == []


@pytest.mark.parametrize("option", [["--port", "0"], ["--port", "70000"],
                                    ["--sessions-per-client", "-1"],
                                    ["--min-duration-factor", "2"]])
def test_serve_refuses_absurd_options(site, tmp_path, option):
    with pytest.raises(SystemExit) as exit_:
        dispatch("python -m experiment", COMMANDS, [
            "serve", str(site), "--db", str(tmp_path / "s.sqlite"), *option])
    assert exit_.value.code == 2 and not (tmp_path / "s.sqlite").exists()


def _export(*argv) -> int:
    return dispatch("python -m experiment", COMMANDS, ["export", *map(str, argv)])


def test_export_refuses_to_overwrite_its_database(client, app, tmp_path, capsys):
    s = start(client)
    client.post("/api/trials", json=trial_body(s["trials"][0]), headers=auth(s))
    db = app.state.store.path
    before = db.read_bytes()[:16]
    for out in (db, tmp_path / "." / db.name):   # the same file, however it is spelt
        assert _export("--db", db, "--out", out) == 2
        assert "is also an input" in capsys.readouterr().err
    assert db.read_bytes()[:16] == before == b"SQLite format 3\x00"
    assert n_stored(app) == 1


@pytest.mark.parametrize("where", ["folder", "under a file", "unwritable"])
def test_export_checks_its_output_before_reading(client, app, tmp_path, capsys, where):
    start(client)
    (tmp_path / "a-file").write_text("x")
    locked = tmp_path / "locked"
    locked.mkdir()
    out = {"folder": tmp_path, "under a file": tmp_path / "a-file" / "t.csv",
           "unwritable": locked / "t.csv"}[where]
    with unwritable(locked):
        assert _export("--db", app.state.store.path, "--out", out) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err and str(out) in err


def test_export_of_a_file_that_is_not_a_database_is_one_error(tmp_path, capsys):
    notdb = tmp_path / "trials.csv"
    notdb.write_text("observer_id,seq\n")
    assert _export("--db", notdb, "--out", tmp_path / "out.csv") == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and str(notdb) in err
    assert notdb.read_text() == "observer_id,seq\n" and not (tmp_path / "out.csv").exists()


# ---- issue 17: the virtual chinrest's calibration, screen-outs, practice rounds ---------------

@pytest.fixture(scope="module")
def cal_site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("calibrated")
    manifest = make_stimulus_set(root / "set", n_images=2)
    lists = make_lists(manifest, root / "lists.csv", n_lists=2, n_practice=2,
                       stimuli_dir=root / "set")
    config = StudyConfig(study_id="cal-test", lists=(), stimulus_deg=8.0,
                         practice_criterion=0.8, practice_max_rounds=2)
    return build_site([lists], root / "set", root / "site", config)


@pytest.fixture
def cal_app(cal_site, tmp_path):
    return create_app(cal_site, tmp_path / "study.sqlite", ADMIN)


def chinrest(card=324.0, distance=60.0, dpr=2.0, drawn=None) -> dict:
    """What the page sends: 8° at 60 cm and 324/8.56 CSS px/cm at dpr 2 is
    2·60·tan(4°)·37.85·2 = 8.3912 cm × 75.70 px/cm = 635.2 -> 635 device px."""
    return {"card_width_px": card, "px_per_cm": card / 8.56, "distance_cm": distance,
            "dpr": dpr, "drawn_px": 635 if drawn is None else drawn}


def test_a_calibrated_session_stores_its_angle_and_each_trial_carries_it(cal_app, tmp_path):
    with TestClient(cal_app) as client:
        r = client.post("/api/session", json={"params": {"PROLIFIC_PID": "c1"},
                                              "calibration": chinrest()})
        assert r.status_code == 201, r.text
        s = r.json()
        # 635 device px at 37.85 × 2 = 75.70 px/cm are 8.3883 cm: 2·atan(8.3883 / 120) = 7.9972°
        assert s["calibration"]["drawn_px"] == 635
        assert s["calibration"]["stimulus_deg"] == pytest.approx(7.99720, abs=1e-5)
        t = s["trials"][-1]
        assert client.post("/api/trials", json=trial_body(t), headers=auth(s)).status_code == 201
    out = tmp_path / "t.csv"
    from experiment.online.export import export_trials
    export_trials(tmp_path / "study.sqlite", out)
    (row,) = read_rows(out, TRIAL_COLUMNS + OPTIONAL_TRIAL_COLUMNS)
    assert float(row["stimulus_deg"]) == pytest.approx(7.99720, abs=1e-5)
    assert row["practice_round"] == ""


@pytest.mark.parametrize("calibration,message", [
    (None, "calibration missing"),
    (chinrest(card=100.0), "px_per_cm must be a number in"),          # 11.7 px/cm
    (chinrest(distance=200.0), "distance_cm must be a number in"),
    (chinrest(drawn=700), "drawn_px 700"),                            # not what 8° is
    ({**chinrest(), "px_per_cm": 40.0}, "not card_width_px / 8.56"),
    ({**chinrest(), "extra": 1}, "exactly the fields"),
])
def test_a_start_without_a_plausible_calibration_is_refused_and_assigns_nothing(
        cal_app, calibration, message):
    with TestClient(cal_app) as client:
        body = {"params": {}} if calibration is None else {"params": {},
                                                            "calibration": calibration}
        r = client.post("/api/session", json=body)
        assert r.status_code == 422 and message in r.json()["error"], r.text
    assert cal_app.state.store.list_counts() == {}


def test_a_native_size_study_refuses_a_calibration(client):
    r = client.post("/api/session", json={"params": {}, "calibration": chinrest()})
    assert r.status_code == 422 and "native pixels" in r.json()["error"]


def test_screen_outs_are_counted_by_reason_without_a_session(cal_app):
    with TestClient(cal_app) as client:
        for reason in ("declined", "screen_too_small", "screen_too_small"):
            r = client.post("/api/screen-out", json={
                "reason": reason, "params": {"PROLIFIC_PID": "so1"}, "detail": {"px": 1}})
            assert r.status_code == 201, r.text
        assert client.post("/api/screen-out", json={"reason": "bored"}).status_code == 422
        assert client.post("/api/screen-out", json={
            "reason": "declined", "detail": {"x": "y" * 3000}}).status_code == 422
        status = client.get("/api/admin/status",
                            headers={"authorization": "Bearer " + ADMIN}).json()
    assert status["screen_outs"] == {"declined": 1, "implausible_calibration": 0,
                                     "screen_too_small": 2}
    assert cal_app.state.store.list_counts() == {}
    # the same participant can still start (e.g. after enlarging the window)
    with TestClient(cal_app) as client:
        r = client.post("/api/session", json={"params": {"PROLIFIC_PID": "so1"},
                                              "calibration": chinrest()})
        assert r.status_code == 201


def test_screen_outs_count_against_the_per_client_start_limit(cal_site, tmp_path):
    app = create_app(cal_site, tmp_path / "db.sqlite", ADMIN,
                     limits=ServerLimits(sessions_per_client=2))
    with TestClient(app) as client:
        codes = [client.post("/api/screen-out", json={"reason": "declined"}).status_code
                 for _ in range(3)]
    assert codes == [201, 201, 429]


def test_practice_rounds_are_stored_apart_and_exported_in_order(cal_app, tmp_path):
    with TestClient(cal_app) as client:
        s = client.post("/api/session", json={"params": {}, "calibration": chinrest()}).json()
        practice = [t for t in s["trials"] if t["practice"]]
        test = [t for t in s["trials"] if not t["practice"]]
        posts = [(t, 1) for t in practice] + [(t, 2) for t in practice] + [(test[0], None)]
        for t, rnd in posts:
            r = client.post("/api/trials", json=trial_body(t, practice_round=rnd),
                            headers=auth(s))
            assert r.status_code == 201, r.text
        # the same round again is a replay; a third round is beyond --practice-max-rounds 2
        again = client.post("/api/trials", json=trial_body(practice[0], practice_round=2),
                            headers=auth(s))
        assert again.status_code == 409
        third = client.post("/api/trials", json=trial_body(practice[0], practice_round=3),
                            headers=auth(s))
        assert third.status_code == 422 and "practice_round" in third.json()["error"]
        on_test = client.post("/api/trials", json=trial_body(test[1], practice_round=1),
                              headers=auth(s))
        assert on_test.status_code == 422 and "not a practice trial" in on_test.json()["error"]
    from experiment.online.export import export_trials
    out = tmp_path / "t.csv"
    assert export_trials(tmp_path / "study.sqlite", out) == 2 * len(practice) + 1
    rows = read_rows(out, TRIAL_COLUMNS + OPTIONAL_TRIAL_COLUMNS)
    assert [(r["practice"], r["practice_round"]) for r in rows] == (
        [("1", "1")] * len(practice) + [("1", "2")] * len(practice) + [("0", "")])


def test_a_database_made_before_practice_rounds_is_rebuilt_keeping_its_trials(
        site, tmp_path):
    import sqlite3

    from experiment.online.store import StudyStore
    db = tmp_path / "old.sqlite"
    app = create_app(site, db, ADMIN)
    with TestClient(app) as client:
        s = start(client, PROLIFIC_PID="old1")
        t = s["trials"][0]
        assert client.post("/api/trials", json=trial_body(t), headers=auth(s)).status_code == 201
    app.state.store.close()
    # make it an old database: the trials table keyed by (session, seq), no attempt column
    conn = sqlite3.connect(db)
    cols = [r[1] for r in conn.execute("PRAGMA table_info(trials)") if r[1] != "attempt"]
    conn.executescript(
        "ALTER TABLE trials RENAME TO t0; CREATE TABLE trials ("
        + ", ".join(f"{c} {'INTEGER NOT NULL' if c in ('session', 'seq') else 'TEXT'}"
                    for c in cols)
        + f", PRIMARY KEY (session, seq)); INSERT INTO trials SELECT {', '.join(cols)} FROM t0;"
        " DROP TABLE t0;")
    conn.close()
    store = StudyStore(db)
    assert "attempt" in {r[1] for r in store._conn().execute("PRAGMA table_info(trials)")}
    assert [r["stimulus_id"] for r in store.trial_rows()] == [t["stimulus_id"]]
    store.close()


def test_export_writes_sessions_and_screen_outs_and_prints_the_study_summary(
        cal_app, tmp_path, capsys):
    with TestClient(cal_app) as client:
        s = client.post("/api/session", json={"params": {"PROLIFIC_PID": "e1"},
                                              "calibration": chinrest()}).json()
        for t in s["trials"][:3]:
            client.post("/api/trials", json=trial_body(t), headers=auth(s))
        client.post("/api/screen-out", json={"reason": "declined"})
    db = tmp_path / "study.sqlite"
    assert dispatch("python -m experiment", COMMANDS, [
        "export", "--db", str(db), "--out", str(tmp_path / "s.csv"), "--sessions"]) == 0
    (row,) = read_rows(tmp_path / "s.csv", ("observer_id", "px_per_cm", "distance_cm",
                                            "dpr", "drawn_px", "stimulus_deg"))
    assert (row["observer_id"], row["drawn_px"], row["dpr"]) == ("e1", "635", "2.0")
    assert float(row["stimulus_deg"]) == pytest.approx(7.99720, abs=1e-5)
    assert dispatch("python -m experiment", COMMANDS, [
        "export", "--db", str(db), "--out", str(tmp_path / "o.csv"), "--screen-outs"]) == 0
    (out,) = read_rows(tmp_path / "o.csv", ("reason", "observer_id"))
    assert out["reason"] == "declined" and out["observer_id"].startswith("anon-")
    printed = capsys.readouterr().out
    # 2 practice + 1 test trial stored; the one test trial answered "animal"
    assert "study: 1 sessions (0 complete); screened out: declined 1; 1 test trials" in printed
    assert "stimulus 8.00-8.00 deg" in printed
