"""200 simulated participants against the study server as deployed: nothing lost or doubled, \
lists balanced.

The server runs as it does in a study: ``python -m experiment serve SITE --db … --port …``
(uvicorn) in its own process on 127.0.0.1; the participants are async httpx clients in
this process. Two scenarios, each on a fresh database:

- burst: every participant starts a session and posts its trials back to back, at most
  ``--connections`` requests in flight -> throughput, and latency that is mostly queueing;
- paced: every participant posts one trial per trial duration of the paradigm (fixation
  1.1-1.6 s + 0.55 s response window, jittered), all at once -> latency under real load.

Each participant also replays one trial (a page retry), which must be refused with 409 and
not stored. All participants come from 127.0.0.1, so the server's per-address limit on new
sessions is set to the number of participants (``--sessions-per-client``; a study behind one
address would raise it the same way); the benchmark posts no completions, so the
least-duration check does not apply. The reference (burst only) is the same CLI with a naive
read-the-counts-then-insert list assignment patched in by this script's ``--naive-server``
mode; production code has no such switch. Only loopback traffic, bounded in count
(participants) and time (--timeout-s).
Last line: BENCH server ... target=met|missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from experiment.online.build import build_site  # noqa: E402
from tests.support.local_server import free_port  # noqa: E402
from tests.support.sample_study import make_lists, make_stimulus_set  # noqa: E402

ADMIN = "bench-admin-token-0123456789"
TRIAL_GAP_S = (1.1 + 0.55, 1.6 + 0.55)   # fixation U(1.1, 1.6) s, then the 550 ms window


def naive_assign(self, list_ids, observer_id, external, source, session_label, study_label,
                 client):
    """Reference: counts read without a write lock, then insert (what a first draft does)."""
    from experiment.online import store as store_module
    from suite.provenance import utc_now

    token = secrets.token_urlsafe(32)
    conn = self._conn()
    counts = dict(conn.execute("SELECT list_id, COUNT(*) FROM sessions GROUP BY list_id"))
    list_id = min(list_ids, key=lambda lid: (counts.get(lid, 0), list_ids.index(lid)))
    time.sleep(0.002)  # the work a real handler does between read and write
    cur = conn.execute(
        "INSERT INTO sessions (token_hash, observer_id, external, source, session_label,"
        " study_label, list_id, created_utc, client) VALUES (?,?,?,?,?,?,?,?,?)",
        (store_module.hash_token(token), observer_id, int(external), source, session_label,
         study_label, list_id, utc_now(), json.dumps(client)))
    return token, store_module.Session(cur.lastrowid, observer_id, source, session_label,
                                       list_id, None)


def serve_naive(argv: list[str]) -> int:
    """The real ``serve`` command with the naive assignment patched in (reference only)."""
    from experiment.__main__ import COMMANDS
    from experiment.online import store as store_module
    from suite.command_line import dispatch

    store_module.StudyStore.assign = naive_assign
    return dispatch("python -m experiment", COMMANDS, ["serve", *argv])


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, all its threads (Linux); nan elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return float("nan")


@contextmanager
def server_process(site: Path, db: Path, sync: str, naive: bool, participants: int,
                   timeout_s: float = 30.0):
    """Start the study server in its own process on a free loopback port; yield (port, pid)."""
    port = free_port()
    serve_args = [str(site), "--db", str(db), "--host", "127.0.0.1", "--port", str(port),
                  "--admin-token", ADMIN, "--sync", sync,
                  "--sessions-per-client", str(participants)]   # every participant is 127.0.0.1
    cmd = ([sys.executable, str(Path(__file__).resolve()), "--naive-server", *serve_args]
           if naive else [sys.executable, "-m", "experiment", "serve", *serve_args])
    log = db.with_suffix(".log")
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + timeout_s
        while True:   # ready = the admin status endpoint answers (the database is open)
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}: {log.read_text()}")
            try:
                r = httpx.get(url + "api/admin/status", timeout=1.0,
                              headers={"authorization": "Bearer " + ADMIN})
                if r.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready after {timeout_s:.0f} s: {log.read_text()}")
            time.sleep(0.05)
        yield port, proc.pid
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)   # uvicorn finishes in-flight requests, then exits
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def trial_body(t: dict, k: int) -> dict:
    key, response = (("f", "animal") if k % 3 else ("j", "non-animal"))
    return {"seq": t["seq"], "block": t["block"], "trial": t["trial"], "practice": t["practice"],
            "stimulus_id": t["stimulus_id"], "response": response, "key": key,
            "rt_ms": 300.0 + k % 200, "timeout": 0, "fixation_ms": 1300.0,
            "frames_intended": 24, "frames_shown": 24, "refresh_hz": 60.0, "dropped_frames": 0,
            "timestamp_utc": "2024-05-01T10:00:00.000Z", "timing": {"t_onset": 1000.0 + k}}


class Pool:
    """A minimal HTTP/1.1 keep-alive client over at most ``size`` loopback connections.

    With httpx's AsyncClient (100 connections) this process saturated a core at ~95 trials/s
    while the server used 20 % of one: the client's cost was being measured as server
    latency. This client only writes a request and reads a Content-Length response.
    """

    def __init__(self, port: int, size: int):
        self.port, self.size, self.opened = port, size, 0
        self.idle: asyncio.Queue = asyncio.Queue()

    async def _acquire(self):
        if self.idle.empty() and self.opened < self.size:
            self.opened += 1
            try:
                return await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                self.opened -= 1
                raise
        return await self.idle.get()

    async def post(self, path: str, body: dict, token: str | None = None) -> tuple[int, bytes]:
        data = json.dumps(body).encode()
        head = (f"POST /{path} HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\n"
                f"content-length: {len(data)}\r\n"
                + (f"authorization: Bearer {token}\r\n" if token else "") + "\r\n")
        reader, writer = await self._acquire()
        try:
            writer.write(head.encode() + data)
            lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            headers = dict(line.lower().split(": ", 1) for line in lines[1:] if line)
            payload = await reader.readexactly(int(headers["content-length"]))
        except BaseException:
            writer.close()
            self.opened -= 1
            raise
        if headers.get("connection") == "close":
            writer.close()
            self.opened -= 1
        else:
            self.idle.put_nowait((reader, writer))
        return status, payload

    async def close(self):
        while not self.idle.empty():
            _, writer = self.idle.get_nowait()
            writer.close()


class Tally:
    """What the clients saw: latencies (s), acknowledged trials, status codes, transport errors."""

    def __init__(self):
        self.lat, self.acked, self.replies, self.errors = [], set(), {}, 0

    async def post(self, pool: Pool, path: str, body: dict, token: str | None = None):
        t0 = time.perf_counter()
        try:
            status, payload = await asyncio.wait_for(pool.post(path, body, token), 30)
        except (OSError, TimeoutError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError, ValueError, KeyError):
            self.errors += 1
            return None, None
        self.lat.append(time.perf_counter() - t0)
        self.replies[status] = self.replies.get(status, 0) + 1
        return status, payload


async def participant(pool: Pool, k: int, tally: Tally, gaps: np.ndarray | None):
    """Start a session, post every trial (paced by ``gaps`` seconds if given), replay the first."""
    if gaps is not None:
        await asyncio.sleep(gaps[0])   # arrivals spread over the first second
    status, payload = await tally.post(pool, "api/session",
                                       {"params": {"PROLIFIC_PID": f"P{k:04d}"}})
    if status != 201:
        return
    s = json.loads(payload)
    due = time.perf_counter()
    for i, t in enumerate(s["trials"] + s["trials"][:1]):   # the last post replays the first
        if gaps is not None:
            due += gaps[1 + i]
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
        status, _ = await tally.post(pool, "api/trials", trial_body(t, k), s["token"])
        if status == 201:
            tally.acked.add((f"P{k:04d}", t["seq"]))


async def crowd(port: int, n: int, n_trials: int, connections: int, paced: bool, seed: int,
                timeout_s: float) -> dict:
    """Burst: n participants share ``connections`` connections; paced: one connection each."""
    rng = np.random.default_rng(seed)
    tally = Tally()
    pools = [Pool(port, 1) for _ in range(n)] if paced else [Pool(port, connections)] * n
    timed_out = False
    t0 = time.perf_counter()
    jobs = []
    for k in range(n):
        gaps = None
        if paced:
            gaps = np.concatenate([[rng.uniform(0, 1.0)], rng.uniform(*TRIAL_GAP_S, n_trials + 1)])
        jobs.append(participant(pools[k], k, tally, gaps))
    try:
        await asyncio.wait_for(asyncio.gather(*jobs), timeout_s)
    except TimeoutError:
        timed_out = True
    wall = time.perf_counter() - t0
    for pool in set(pools):
        await pool.close()
    return {"tally": tally, "wall": wall, "timed_out": timed_out}


def stored_trials(db: Path) -> tuple[list[tuple[str, int]], dict[str, int]]:
    """(observer_id, seq) of every stored trial, and sessions per list, read from the file."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        rows = conn.execute("SELECT s.observer_id, t.seq FROM trials t "
                            "JOIN sessions s ON s.id = t.session").fetchall()
        counts = dict(conn.execute("SELECT list_id, COUNT(*) FROM sessions GROUP BY list_id"))
    return rows, counts


def scenario(site: Path, db: Path, args, n_trials: int, lists: tuple[str, ...], paced: bool,
             naive: bool = False) -> dict:
    with server_process(site, db, args.sync, naive, args.participants) as (port, pid):
        cpu0 = _cpu_s(pid)
        out = asyncio.run(crowd(port, args.participants, n_trials, args.connections, paced,
                                args.seed, args.timeout_s))
        cpu = _cpu_s(pid) - cpu0
    tally = out["tally"]
    stored, counts = stored_trials(db)
    counts = {lid: counts.get(lid, 0) for lid in lists}
    expected = {(f"P{k:04d}", s) for k in range(args.participants) for s in range(n_trials)}
    # lost: a trial never acknowledged, or acknowledged and not in the database afterwards
    lost = len(expected - tally.acked) + len(tally.acked - set(stored))
    lat = np.asarray(tally.lat) * 1000 if tally.lat else np.full(1, np.nan)
    n_req = len(tally.lat)
    return {"stored": len(stored), "expected": len(expected), "lost": lost,
            "duplicated": len(stored) - len(set(stored)),
            "replays_refused": tally.replies.get(409, 0),
            "other_status": sum(v for c, v in tally.replies.items() if c not in (201, 409)),
            "errors": tally.errors, "timed_out": out["timed_out"], "counts": counts,
            "spread": max(counts.values()) - min(counts.values()),
            "p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)),
            "wall": out["wall"], "req_s": n_req / out["wall"],
            "trials_s": len(tally.acked) / out["wall"],
            "cpu_ms": 1000 * cpu / max(n_req, 1), "cpu_share": cpu / out["wall"]}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--naive-server":
        return serve_naive(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=200)
    parser.add_argument("--lists", type=int, default=6)
    parser.add_argument("--connections", type=int, default=100,
                        help="burst: most requests in flight at once")
    parser.add_argument("--timeout-s", type=float, default=120.0, help="cap per scenario")
    parser.add_argument("--sync", choices=("full", "normal"), default="full")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-reference", action="store_true", help="skip the naive reference")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_server_") as tmp:
        tmp = Path(tmp)
        manifest = make_stimulus_set(tmp / "set", n_images=8, size=32)
        lists_csv = make_lists(manifest, tmp / "lists.csv", n_lists=args.lists,
                               stimuli_dir=tmp / "set")
        site = build_site([lists_csv], tmp / "set", tmp / "site")
        study = json.loads((site / "study.json").read_text())
        n_trials = len(json.loads((site / "lists" / "L0.json").read_text())["trials"])
        lists = tuple(study["lists"])
        try:
            runs = {"burst": scenario(site, tmp / "burst.sqlite", args, n_trials, lists, False),
                    "paced": scenario(site, tmp / "paced.sqlite", args, n_trials, lists, True)}
            if not args.no_reference:
                runs["naive-ref burst"] = scenario(site, tmp / "naive.sqlite", args, n_trials,
                                                   lists, False, naive=True)
        except RuntimeError as err:   # the server did not start or died
            print(f"error: {err}")
            print(f"BENCH server participants={args.participants} lost=nan duplicated=nan "
                  "p50_ms=nan p99_ms=nan target=missed")
            return 0
    print(f"server process: uvicorn, sync={args.sync}; clients: asyncio HTTP/1.1 in this process; "
          f"{args.participants} participants × {n_trials} trials + 1 replay; {os.cpu_count()} CPUs")
    print(f"{'scenario':16} {'stored':>6} {'expect':>6} {'lost':>4} {'dupes':>5} {'409s':>4} "
          f"{'err':>3} {'spread':>6} {'trials/s':>8} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'wall s':>6} {'srv cpu ms/req':>14} {'srv cpu %':>9}  list counts")
    for name, r in runs.items():
        print(f"{name:16} {r['stored']:6d} {r['expected']:6d} {r['lost']:4d} {r['duplicated']:5d} "
              f"{r['replays_refused']:4d} {r['errors'] + r['other_status']:3d} {r['spread']:6d} "
              f"{r['trials_s']:8.0f} {r['p50']:7.1f} {r['p99']:7.1f} {r['wall']:6.1f} "
              f"{r['cpu_ms']:14.2f} {100 * r['cpu_share']:9.0f}  {r['counts']}"
              + ("  TIMED OUT" if r["timed_out"] else ""))
    burst, paced = runs["burst"], runs["paced"]
    ours = (burst, paced)
    lost = sum(r["lost"] for r in ours)
    dup = sum(r["duplicated"] for r in ours)
    refused = min(r["replays_refused"] for r in ours)
    spread = max(r["spread"] for r in ours)
    met = (lost == 0 and dup == 0 and spread <= 1 and refused == args.participants
           and not any(r["timed_out"] or r["errors"] or r["other_status"] for r in ours))
    naive = runs.get("naive-ref burst")
    print(f"BENCH server participants={args.participants} lost={lost} duplicated={dup} "
          f"replays_refused={refused} list_spread={spread} "
          f"burst_trials_per_s={burst['trials_s']:.0f} burst_p50_ms={burst['p50']:.1f} "
          f"burst_p99_ms={burst['p99']:.1f} p50_ms={paced['p50']:.1f} p99_ms={paced['p99']:.1f} "
          f"naive_list_spread={naive['spread'] if naive else 'nan'} "
          f"target={'met' if met else 'missed'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
