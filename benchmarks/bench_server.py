"""200 simulated participants posting at once over loopback: nothing lost or doubled, lists balanced.

Ours assigns lists inside BEGIN IMMEDIATE; the reference is the same server with a naive
read-the-counts-then-insert assignment, run side by side in this process. Every participant
also replays one trial (a page retry), which must be refused with 409 and not stored.
Last line: BENCH server ... target=met|missed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from experiment.online import store as store_module  # noqa: E402
from experiment.online.build import build_site  # noqa: E402
from experiment.online.local_server import serve_in_thread  # noqa: E402
from experiment.online.sample_study import make_lists, make_stimulus_set  # noqa: E402
from experiment.online.server import create_app  # noqa: E402
from stimuli.provenance import utc_now  # noqa: E402

ADMIN = "bench-admin-token-0123456789"


def naive_assign(self, list_ids, observer_id, external, source, session_label, study_label,
                 client):
    """Reference: counts read without a write lock, then insert (what a first draft does)."""
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


def trial_body(t: dict, k: int) -> dict:
    key, response = (("f", "animal") if k % 3 else ("j", "non-animal"))
    return {"seq": t["seq"], "block": t["block"], "trial": t["trial"], "practice": t["practice"],
            "stimulus_id": t["stimulus_id"], "response": response, "key": key,
            "rt_ms": 300.0 + k % 200, "timeout": 0, "fixation_ms": 1300.0,
            "frames_intended": 24, "frames_shown": 24, "refresh_hz": 60.0, "dropped_frames": 0,
            "timestamp_utc": "2024-05-01T10:00:00.000Z", "timing": {"t_onset": 1000.0 + k}}


async def participant(client, k: int, latencies: list, sent: set, replies: dict):
    t0 = time.perf_counter()
    r = await client.post("api/session", json={"params": {"PROLIFIC_PID": f"P{k:04d}"}})
    latencies.append(time.perf_counter() - t0)
    s = r.json()
    head = {"authorization": "Bearer " + s["token"]}
    for t in s["trials"] + s["trials"][:1]:   # the last post replays the first trial
        t0 = time.perf_counter()
        r = await client.post("api/trials", json=trial_body(t, k), headers=head)
        latencies.append(time.perf_counter() - t0)
        replies[r.status_code] = replies.get(r.status_code, 0) + 1
        if r.status_code == 201:
            sent.add((f"P{k:04d}", t["seq"]))


async def crowd(url: str, n: int, timeout_s: float) -> dict:
    latencies, sent, replies = [], set(), {}
    limits = httpx.Limits(max_connections=100)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        t0 = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(
            *(participant(client, k, latencies, sent, replies) for k in range(n))), timeout_s)
        wall = time.perf_counter() - t0
    return {"lat": np.asarray(latencies) * 1000, "sent": sent, "replies": replies, "wall": wall}


def run(site: Path, db: Path, n: int, timeout_s: float, sync: str) -> dict:
    app = create_app(site, db, ADMIN, sync=sync)
    with serve_in_thread(app) as url:
        out = asyncio.run(crowd(url, n, timeout_s))
    store = app.state.store
    stored = [(r["observer_id"], r["trial"], r["block"], r["practice"]) for r in store.trial_rows()]
    counts = store.list_counts()
    n_trials = len(json.loads((site / "lists" / "L0.json").read_text())["trials"])
    return {**out, "stored": len(stored), "unique": len(set(stored)),
            "expected": n * n_trials, "counts": counts,
            "spread": max(counts.values()) - min(counts.values())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, default=200)
    parser.add_argument("--lists", type=int, default=6)
    parser.add_argument("--timeout-s", type=float, default=180.0)
    parser.add_argument("--sync", choices=("full", "normal"), default="full")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_server_") as tmp:
        tmp = Path(tmp)
        manifest = make_stimulus_set(tmp / "set", n_images=8, size=32)
        lists = make_lists(manifest, tmp / "lists.csv", n_lists=args.lists, stimuli_dir=tmp / "set")
        site = build_site([lists], tmp / "set", tmp / "site")
        ours = run(site, tmp / "ours.sqlite", args.participants, args.timeout_s, args.sync)
        original = store_module.StudyStore.assign
        store_module.StudyStore.assign = naive_assign
        try:
            ref = run(site, tmp / "ref.sqlite", args.participants, args.timeout_s, args.sync)
        finally:
            store_module.StudyStore.assign = original
    print(f"{'server':10} {'stored':>7} {'expected':>8} {'dupes':>5} {'409s':>5} "
          f"{'spread':>6} {'p50 ms':>7} {'p99 ms':>7} {'wall s':>6}  list counts")
    for name, r in (("ours", ours), ("naive-ref", ref)):
        print(f"{name:10} {r['stored']:7d} {r['expected']:8d} {r['stored'] - r['unique']:5d} "
              f"{r['replies'].get(409, 0):5d} {r['spread']:6d} "
              f"{np.percentile(r['lat'], 50):7.1f} {np.percentile(r['lat'], 99):7.1f} "
              f"{r['wall']:6.1f}  {r['counts']}")
    lost = ours["expected"] - len(ours["sent"]) + (ours["expected"] - ours["stored"])
    dup = ours["stored"] - ours["unique"]
    met = (lost == 0 and dup == 0 and ours["spread"] <= 1
           and ours["replies"].get(409, 0) == args.participants)
    print(f"BENCH server participants={args.participants} lost={lost} duplicated={dup} "
          f"replays_refused={ours['replies'].get(409, 0)} list_spread={ours['spread']} "
          f"p50_ms={np.percentile(ours['lat'], 50):.1f} p99_ms={np.percentile(ours['lat'], 99):.1f} "
          f"naive_list_spread={ref['spread']} target={'met' if met else 'missed'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
