"""The ClickMe game's partner under load: players asking at the game's pace (one query every
0.5 s each: a bubble per 50 ms, the partner asked every 10 bubbles).

Two designs, on this machine (its cores shared by everything below):

- **in the page** (the suite's): the partner runs in each player's browser (onnxruntime-web,
  one WebAssembly thread). An answer's latency is that browser's inference time, whatever
  the number of players; the server only stores one round per image. Measured: the
  inference time in headless Chromium at the game's pace (a query every 0.5 s), while
  ``P`` simulated players post their rounds (one per 7 s each, 140-bubble paths) to
  ``python -m experiment serve`` in its own process; a level is held when both the
  inference p99 and the round-post p99 stay ≤ 250 ms.
- **one request, one forward on the server** (reference, defined here only): a Starlette
  server in its own process running the same ONNX partner with onnxruntime (2 threads);
  every query posts the revealed 256×256 image and waits for its forward pass. Players are
  added until the answer latency p99 passes 250 ms.

Last line: ``BENCH clickme players=… p99_ms=… target=met|missed`` (target: ≥ 100 players held
at p99 ≤ 250 ms). Loopback traffic only, bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.support.chromium import launch as launch_chromium  # noqa: E402
from tests.support.data import IMAGENET_SAMPLE as SAMPLE  # noqa: E402
from tests.support.local_server import free_port  # noqa: E402

ADMIN = "bench-admin-token-0123456789"
QUERY_GAP_S = 0.5      # 10 bubbles × 50 ms
ROUND_S = 7.0
TARGET_PLAYERS, TARGET_MS = 100, 250.0


def pct(values, q) -> float:
    return float(np.percentile(values, q)) if len(values) else float("nan")


# ---- the reference server: one request, one forward (not part of the suite) ----------------

def reference_app(onnx_path: str):
    import onnxruntime as ort
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(onnx_path, options, providers=["CPUExecutionProvider"])
    lock = threading.Lock()

    def forward(data: bytes) -> list[int]:
        image = np.frombuffer(data, np.uint8).reshape(1, 256, 256, 3)
        with lock:
            logits = session.run(None, {"image": image})[0][0]
        return np.argsort(-logits)[:5].tolist()

    async def query(request):
        return JSONResponse({"top5": await run_in_threadpool(forward, await request.body())})

    return Starlette(routes=[Route("/query", query, methods=["POST"])])


def run_reference_server(port: int, onnx_path: str) -> None:
    import uvicorn

    uvicorn.run(reference_app(onnx_path), host="127.0.0.1", port=port, log_level="warning")


def wait_up(url: str, proc: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode})")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("server did not start")


async def players_querying(url: str, n_players: int, duration_s: float,
                           images: list[bytes]) -> list[float]:
    """``n_players`` each posting a revealed image every 0.5 s (random phase); latencies, ms."""
    latencies: list[float] = []
    rng = np.random.default_rng(n_players)
    limits = httpx.Limits(max_connections=n_players)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        async def player(k: int):
            await asyncio.sleep(float(rng.uniform(0, QUERY_GAP_S)))
            start = time.monotonic()
            i = 0
            while time.monotonic() - start < duration_s:
                due = start + i * QUERY_GAP_S
                t0 = time.perf_counter()
                await client.post("/query", content=images[(k + i) % len(images)])
                latencies.append((time.perf_counter() - t0) * 1000)
                i += 1
                await asyncio.sleep(max(0.0, due + QUERY_GAP_S - time.monotonic()))
        await asyncio.gather(*(player(k) for k in range(n_players)))
    return latencies


def bench_reference(onnx: Path, duration_s: float, max_players: int) -> list[tuple]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--reference-server", str(port),
                             "--partner", str(onnx)], stdout=subprocess.DEVNULL)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, 256 * 256 * 3, dtype=np.uint8).tobytes() for _ in range(8)]
    rows = []
    try:
        wait_up(f"http://127.0.0.1:{port}/query", proc)
        n = 2
        while n <= max_players:
            lat = asyncio.run(players_querying(f"http://127.0.0.1:{port}", n, duration_s, images))
            rows.append((n, pct(lat, 50), pct(lat, 99), len(lat) / duration_s))
            print(f"  server one-forward: {n:4d} players  p50 {rows[-1][1]:7.1f} ms  "
                  f"p99 {rows[-1][2]:7.1f} ms  {rows[-1][3]:6.1f} queries/s", flush=True)
            if rows[-1][2] > TARGET_MS:
                break
            n *= 2
    finally:
        proc.terminate()
        proc.wait()
    return rows


# ---- the suite's design: the partner in the page -------------------------------------------

def make_site(root: Path, onnx: Path) -> Path:
    from experiment.online.clickme_build import build_game

    rows = [r.split(",") for r in (SAMPLE / "manifest.csv").read_text().splitlines()[1:]]
    lines = ["image,image_id,category,class_index"]
    lines += [f"{SAMPLE / r[0]},{r[1]},{r[-1]},{r[2]}" for r in rows[:9]]
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return build_game(root / "manifest.csv", root / "site", onnx, per_participant=8) and \
        root / "site"


def timeout_round(item: dict, rng) -> dict:
    xy = np.clip(np.cumsum(rng.integers(-6, 7, (140, 2)), axis=0) + 128, 0, 255)
    path = [[int(x), int(y) if k == 0 or [x, y] != list(xy[k - 1]) else int((y + 1) % 256),
             50 * k] for k, (x, y) in enumerate(xy)]
    for k in range(1, len(path)):   # the game never repeats a position in a row
        if path[k][:2] == path[k - 1][:2]:
            path[k][0] = (path[k][0] + 1) % 256
    cls = item["class_index"]
    miss = [c for c in (900, 901, 902, 903, 904, 905) if c != cls][:5]
    queries = [{"n_bubbles": 10 * (k + 1), "top5": miss, "recognized": False}
               for k in range(14)]
    return {"position": item["position"], "image_id": item["image_id"], "outcome": "timeout",
            "points": 0, "path": path, "queries": queries,
            "timestamp_utc": "2026-01-01T00:00:00.000Z"}


async def players_posting_rounds(url: str, n_players: int, duration_s: float) -> list[float]:
    latencies: list[float] = []
    rng = np.random.default_rng(n_players)
    async with httpx.AsyncClient(base_url=url, timeout=30,
                                 limits=httpx.Limits(max_connections=n_players)) as client:
        async def begin(k: int) -> dict:
            r = await client.post("/api/session", json={"params": {
                "PROLIFIC_PID": f"b{n_players}x{k}", "SESSION_ID": f"s{k}", "STUDY_ID": "b"}})
            return r.json()

        # sessions first (players arrive over minutes in a real game; a burst of starts is
        # bench_server.py's subject), then the rounds at the game's pace
        sessions = [await begin(k) for k in range(n_players)]

        async def player(k: int):
            s = sessions[k]
            await asyncio.sleep(float(rng.uniform(0, ROUND_S)))
            start = time.monotonic()
            for item in s["rounds"]:
                if time.monotonic() - start > duration_s:
                    break
                t0 = time.perf_counter()
                r = await client.post("/api/rounds", json=timeout_round(item, rng),
                                      headers={"authorization": "Bearer " + s["token"]})
                if r.status_code != 201:
                    raise RuntimeError(f"round refused: {r.status_code} {r.text}")
                latencies.append((time.perf_counter() - t0) * 1000)
                await asyncio.sleep(ROUND_S)
        await asyncio.gather(*(player(k) for k in range(n_players)))
    return latencies


PAGE_JS = """async ([n, gap]) => {
  const P = window.ClickmePartner;
  await P.load('partner.onnx');
  const img = new Image(); img.src = 'practice.png'; await img.decode();
  const cv = document.createElement('canvas'); cv.width = cv.height = 256;
  const ctx = cv.getContext('2d'); ctx.drawImage(img, 0, 0);
  const rgba = ctx.getImageData(0, 0, 256, 256).data;
  const path = []; for (let k = 0; k < 140; k += 1) \
path.push([(k * 37) % 256, (k * 13) % 256, 50 * k]);
  const ms = [];
  await P.logits(P.revealed(rgba, path, 10, 14, 128));   // warm-up
  for (let i = 0; i < n; i += 1) {
    const t0 = performance.now();
    const rgb = P.revealed(rgba, path, 10 * (1 + i % 14), 14, 128);
    await P.logits(rgb);
    const dt = performance.now() - t0;
    ms.push(dt);
    await new Promise((r) => setTimeout(r, Math.max(0, gap - dt)));
  }
  return ms;
}"""


def bench_in_page(onnx: Path, levels: list[int], duration_s: float) -> list[tuple]:
    from playwright.sync_api import sync_playwright

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        site = make_site(Path(tmp), onnx)
        with sync_playwright() as p:
            browser = launch_chromium(p)
            for n in levels:
                port = free_port()
                proc = subprocess.Popen(
                    [sys.executable, "-m", "experiment", "serve", str(site), "--db",
                     str(Path(tmp) / f"game{n}.sqlite"), "--port", str(port), "--admin-token",
                     ADMIN, "--sessions-per-client", "0"], cwd=REPO, stdout=subprocess.DEVNULL)
                try:
                    url = f"http://127.0.0.1:{port}"
                    wait_up(url + "/", proc)
                    page = browser.new_page()
                    page.goto(url + "/")
                    page.wait_for_function("() => !!window.ClickmePartner")
                    posts: list[float] = []
                    load = threading.Thread(target=lambda out=posts, u=url, k=n: out.extend(
                        asyncio.run(players_posting_rounds(u, k, duration_s))))
                    load.start()
                    infer = page.evaluate(PAGE_JS, [int(duration_s / QUERY_GAP_S),
                                                    QUERY_GAP_S * 1000])
                    load.join()
                    page.close()
                finally:
                    proc.terminate()
                    proc.wait()
                rows.append((n, pct(infer, 50), pct(infer, 99), pct(posts, 50), pct(posts, 99)))
                print(f"  in page: {n:4d} players  partner p50 {rows[-1][1]:6.1f} ms  "
                      f"p99 {rows[-1][2]:6.1f} ms  | round posts p50 {rows[-1][3]:6.1f} ms  "
                      f"p99 {rows[-1][4]:6.1f} ms ({len(posts)})", flush=True)
            browser.close()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--partner", type=Path, default=None,
                    help="partner ONNX (default: exported now with python -m models)")
    ap.add_argument("--duration-s", type=float, default=15.0, help="seconds per load level")
    ap.add_argument("--levels", default="100,200,400", help="players for the in-page design")
    ap.add_argument("--max-server-players", type=int, default=256)
    ap.add_argument("--reference-server", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.reference_server is not None:
        run_reference_server(args.reference_server, str(args.partner))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        onnx = args.partner
        if onnx is None:
            onnx = Path(tmp) / "partner.onnx"
            subprocess.run([sys.executable, "-m", "models", "export-partner", "--out", str(onnx)],
                           check=True, cwd=REPO, stdout=subprocess.DEVNULL)
        print(f"cores: {os.cpu_count()}; a query every {QUERY_GAP_S} s per player; "
              f"{args.duration_s:g} s per level", flush=True)
        ref = bench_reference(onnx, args.duration_s, args.max_server_players)
        page = bench_in_page(onnx, [int(v) for v in args.levels.split(",")], args.duration_s)
    ref_held = max([n for n, _, p99, _ in ref if p99 <= TARGET_MS], default=0)
    held = [r for r in page if r[2] <= TARGET_MS and r[4] <= TARGET_MS]
    players = max([r[0] for r in held], default=0)
    p99 = max([r[2] for r in held], default=page[0][2] if page else float("nan"))
    print(json.dumps({"server_one_forward_players_held": ref_held,
                      "server_one_forward": ref, "in_page": page}))
    target = "met" if players >= TARGET_PLAYERS else "missed"
    print(f"BENCH clickme players={players} p99_ms={p99:.1f} "
          f"server_one_forward_players={ref_held} target={target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
