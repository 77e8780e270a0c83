"""The study server: serves the site, assigns lists, stores each trial once.

It exports behind a token.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from experiment.online.config import SCREEN_OUT_REASONS, ServerLimits, StudyConfig
from experiment.online.store import REJECTED_COLUMNS, WEB_TRIAL_COLUMNS, AlreadyStarted, StudyStore
from experiment.online.validation import (
    NONCE,
    Invalid,
    calibration,
    platform_identity,
    trial_row,
)
from experiment.schema import format_row
from suite.errors import InputError
from suite.outputs import check_output_file
from suite.provenance import utc_now

MAX_BODY = 16 * 1024   # a trial is ~600 bytes; anything near this is not from our page
MAX_DEPTH = 8          # our page nests at most 3 levels; deeper bodies are refused with 400
HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "content-security-policy": "default-src 'self'; img-src 'self' data: blob:; "
                               "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'",
}
log = logging.getLogger("experiment.online.server")


class HTTPError(Exception):
    def __init__(self, status: int, message: str, **extra):
        super().__init__(message)
        self.status, self.extra = status, extra


def _error(status: int, message: str, **extra) -> JSONResponse:
    return JSONResponse({"error": message, **extra}, status_code=status)


def _too_deep(value, limit: int = MAX_DEPTH) -> bool:
    """True if ``value`` nests lists/objects more than ``limit`` levels.

    Walked without recursion.
    """
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if isinstance(v, dict):
            v = v.values()
        elif not isinstance(v, list):
            continue
        if depth > limit:
            return True
        stack.extend((x, depth + 1) for x in v)
    return False


async def _read_json(request: Request, limit: int):
    # media types are case-insensitive and may carry parameters (RFC 9110 §8.3.1)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        raise HTTPError(415, "send application/json")
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > limit):
        raise HTTPError(413, f"body larger than {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPError(413, f"body larger than {limit} bytes")
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise HTTPError(400, "body is not valid JSON") from None
    except RecursionError:   # "[[[[…" thousands deep: the parser gives up, the client is wrong
        raise HTTPError(400, "body is not valid JSON: nested too deeply") from None
    if _too_deep(value):
        raise HTTPError(400, f"body is not valid JSON for this server: nested more than "
                             f"{MAX_DEPTH} levels")
    return value


def client_address(request: Request, trust_proxy: bool) -> str:
    """The address limits are counted by: the connection's peer, or behind a trusted reverse
    proxy the last X-Forwarded-For entry (the one that proxy appended; earlier ones are
    whatever the client sent, so they are never used)."""
    if trust_proxy:
        forwarded = request.headers.get("x-forwarded-for", "").split(",")[-1].strip()
        if forwarded:
            return forwarded[:64]
    return request.client.host if request.client else "unknown"


class StartLimit:
    """At most ``limit`` new sessions per client address in any ``window_s`` seconds."""

    def __init__(self, limit: int, window_s: float):
        self.limit, self.window_s = limit, window_s
        self._starts: dict[str, deque] = {}

    def retry_after(self, client: str, now: float | None = None) -> float:
        """0 and the start counted if ``client`` may start one now, else seconds to wait.

        Checking and counting happen together, with no await between them, so a burst of
        concurrent starts cannot all pass before any of them is counted.
        """
        if self.limit <= 0:
            return 0.0
        now = time.monotonic() if now is None else now
        if len(self._starts) > 10_000:   # forget clients with nothing left in the window
            self._starts = {k: q for k, q in self._starts.items()
                            if q and now - q[-1] < self.window_s}
        recent = self._starts.setdefault(client, deque())
        while recent and now - recent[0] >= self.window_s:
            recent.popleft()
        if len(recent) >= self.limit:
            return self.window_s - (now - recent[0])
        recent.append(now)
        return 0.0


def _small_object(body: dict, name: str) -> dict:
    """``body[name]``: a JSON object of at most 2000 characters (absent: empty)."""
    value = body.get(name, {})
    if not isinstance(value, dict) or len(json.dumps(value)) > 2000:
        raise HTTPError(422, f"{name} must be a small JSON object")
    return value


def _bearer(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    if not auth.startswith("Bearer ") or not 0 < len(auth) - 7 <= 128:
        raise HTTPError(401, "missing or malformed Authorization: Bearer token")
    return auth[7:]


class StudyApp:
    """The request handlers of one study, over its site folder and database."""

    def __init__(self, site: Path, store: StudyStore, config: StudyConfig,
                 lists: dict[str, list[dict]], admin_token: str, max_body: int,
                 limits: ServerLimits | None = None):
        self.site, self.store, self.config, self.lists = site, store, config, lists
        self.admin_token, self.max_body = admin_token, max_body
        self.limits = limits or ServerLimits()
        self._start_limit = StartLimit(self.limits.sessions_per_client,
                                       self.limits.session_window_s)
        # All database work runs on this one thread, off the event loop (a commit waits for
        # fsync). Measured: a hop through Starlette's thread pool (anyio, many threads) costs
        # ~0.25 ms of CPU per request, more than the request's SQL; a one-thread executor
        # costs next to nothing, and writes are one at a time in SQLite anyway.
        self._db_thread = ThreadPoolExecutor(1, thread_name_prefix="study-db")

    async def _in_db(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._db_thread, fn, *args)

    # Each request makes one trip to the database thread, which does all of its database
    # work (session lookup, the write and its commit).

    def _session(self, token: str):
        session = self.store.session_for(token)
        if session is None:
            raise HTTPError(401, "unknown session token")
        return session

    def _payload(self, token: str, session) -> dict:
        c = self.config
        return {
            "token": token, "observer_id": session.observer_id,
            "session_id": session.session_label, "list_id": session.list_id,
            "trials": self.lists[session.list_id], "done": self.store.done_seqs(session),
            "completed": session.completed_utc is not None,
            "calibration": self.store.calibration(session),
            "config": {"keys": c.keys, "title": c.title, "timing": c.to_json()["timing"],
                       "stimulus_deg": c.stimulus_deg},
        }

    def _resume(self, token: str) -> dict:
        return self._payload(token, self._session(token))

    def _assign(self, observer, external, source, label, study, client, nonce, measured):
        try:
            token, session, new = self.store.assign(self.config.lists, observer, external,
                                                    source, label, study, client, nonce,
                                                    measured)
        except AlreadyStarted:
            raise HTTPError(409, "this participant id already started in another browser; "
                                 "continue there or contact the researchers") from None
        return self._payload(token, session), new

    async def start_session(self, request: Request) -> Response:
        body = await _read_json(request, self.max_body)
        if not isinstance(body, dict):
            raise HTTPError(400, "body must be a JSON object")
        token = body.get("token")
        if token is not None:
            if not isinstance(token, str) or not 0 < len(token) <= 128:
                raise HTTPError(422, "token must be a string")
            return JSONResponse(await self._in_db(self._resume, token), status_code=200)
        nonce = body.get("nonce")
        if nonce is not None and (not isinstance(nonce, str) or not NONCE.match(nonce)):
            raise HTTPError(422, "nonce must be 16-128 letters, digits, '_' or '-'")
        address = client_address(request, self.limits.trust_proxy)
        # the retry of a start whose reply was lost gets its session and is not counted
        retry = nonce is not None and await self._in_db(self.store.knows_nonce, nonce)
        wait = 0.0 if retry else self._start_limit.retry_after(address)
        if wait:
            log.warning("refused a session start from %s: more than %d in %.0f s "
                        "(--sessions-per-client)", address, self.limits.sessions_per_client,
                        self.limits.session_window_s)
            raise HTTPError(429, "too many new sessions from your network; please try again "
                                 f"in {wait / 60:.0f} minutes", retry_after_s=int(wait) + 1)
        client = _small_object(body, "client")
        measured = self._calibration(body.get("calibration"))
        identity, (source, observer, label, study) = self._identity(body)
        # a retry carrying the nonce of a start whose reply was lost gets that session (200)
        payload, new = await self._in_db(self._assign, observer, identity is not None, source,
                                         label, study, client, nonce, measured)
        return JSONResponse(payload, status_code=201 if new else 200)

    def _calibration(self, given) -> dict | None:
        """The virtual chinrest's result a new session must carry (None: native size)."""
        if self.config.stimulus_deg is None:
            if given is not None:
                raise HTTPError(422, "this study draws native pixels: no calibration")
            return None
        if given is None:
            raise HTTPError(422, "calibration missing: the virtual chinrest comes first")
        try:
            return calibration(given, self.config.stimulus_deg, self.config.calibration)
        except Invalid as err:
            raise HTTPError(422, f"calibration: {err}") from None

    @staticmethod
    def _identity(body: dict) -> tuple:
        """(platform identity or None, (source, observer, session label, study label))."""
        try:
            identity = platform_identity(body.get("params"))
        except Invalid as err:
            raise HTTPError(422, str(err)) from None
        if identity:
            source, observer, label, study = identity
            return identity, (source, observer, label or secrets.token_hex(8), study)
        return None, ("anonymous", "anon-" + secrets.token_hex(6), secrets.token_hex(8), "")

    async def screen_out(self, request: Request) -> Response:
        """Count a participant stopped before a list was assigned: consent declined, or the
        virtual chinrest's estimates implausible, or the screen too small for the angle. No
        session is made and no list slot used; counted per client like session starts."""
        body = await _read_json(request, self.max_body)
        if not isinstance(body, dict):
            raise HTTPError(400, "body must be a JSON object")
        reason = body.get("reason")
        if reason not in SCREEN_OUT_REASONS:
            raise HTTPError(422, f"reason must be one of {list(SCREEN_OUT_REASONS)}")
        client, detail = _small_object(body, "client"), _small_object(body, "detail")
        _, (source, observer, _, _) = self._identity(body)
        address = client_address(request, self.limits.trust_proxy)
        wait = self._start_limit.retry_after(address)
        if wait:
            raise HTTPError(429, "too many requests from your network; please try again "
                                 f"in {wait / 60:.0f} minutes", retry_after_s=int(wait) + 1)
        await self._in_db(self.store.screen_out, reason, source, observer, client, detail)
        log.info("screen-out (%s) of %s %s", reason, source, observer)
        return JSONResponse({"counted": reason}, status_code=201)

    def _store_trial(self, token: str, body) -> int:
        session = self._session(token)
        rounds = self.config.practice_max_rounds if self.config.practice_criterion else 1
        try:
            seq, row, timing = trial_row(body, self.lists[session.list_id],
                                         self.config.timing, self.config.keys, rounds)
        except Invalid as err:
            # kept aside (flagged, never in the trial table) so the researchers can see it
            self.store.add_rejected(session, 422, str(err), body)
            raise HTTPError(422, str(err)) from None
        row.update(observer_id=session.observer_id, observer_type="human", runner="web",
                   session_id=session.session_label, list_id=session.list_id,
                   stimulus_deg=session.stimulus_deg)
        # add_trial returns only after the row is committed at the configured synchronous level
        if not self.store.add_trial(session, seq, row, timing):
            raise HTTPError(409, "trial already stored", seq=seq, duplicate=True)
        return seq

    async def post_trial(self, request: Request) -> Response:
        token = _bearer(request)
        body = await _read_json(request, self.max_body)
        seq = await self._in_db(self._store_trial, token, body)
        return JSONResponse({"stored": seq}, status_code=201)

    def _complete(self, token: str) -> None:
        session = self._session(token)
        done = set(self.store.done_seqs(session))
        missing = [t["seq"] for t in self.lists[session.list_id] if t["seq"] not in done]
        if missing:
            raise HTTPError(409, "trials missing", missing=missing)
        if session.completed_utc is None and self.limits.min_duration_factor > 0:
            self._refuse_too_fast(session, self.limits.min_duration_s(
                len(self.lists[session.list_id]), self.config.timing),
                "the list takes at least", "this study can be done")
        self.store.mark_complete(session)

    def _refuse_too_fast(self, session, least_s: float, least_is: str, done_is: str) -> None:
        """403 (logged) when ``session`` completes sooner than ``least_s`` after its start."""
        started = datetime.fromisoformat(self.store.started_utc(session))
        elapsed = (datetime.fromisoformat(utc_now()) - started).total_seconds()
        if elapsed < least_s:
            log.warning("refused completion of %s session %s: %.1f s after its start, "
                        "%s %.1f s (--min-duration-factor %g)", session.observer_id,
                        session.session_label, elapsed, least_is, least_s,
                        self.limits.min_duration_factor)
            raise HTTPError(403, f"finished faster than {done_is}; contact the researchers",
                            too_fast=True)

    async def complete(self, request: Request) -> Response:
        await self._in_db(self._complete, _bearer(request))
        return JSONResponse({"completion_code": self.config.completion_code,
                             "completion_url": self.config.completion_url})

    def _admin(self, request: Request) -> None:
        if not hmac.compare_digest(_bearer(request).encode(), self.admin_token.encode()):
            raise HTTPError(403, "wrong admin token")

    async def export(self, request: Request) -> Response:
        self._admin(request)
        # a long read on its own thread (WAL: readers never wait for the writer), so an
        # export during a study does not hold up the participants' trials on the database thread
        rows = await run_in_threadpool(self.store.trial_rows)
        text = format_row({c: c for c in WEB_TRIAL_COLUMNS}, WEB_TRIAL_COLUMNS) + "".join(
            format_row(r, WEB_TRIAL_COLUMNS) for r in rows)
        return Response(text, media_type="text/csv; charset=utf-8",
                        headers={"content-disposition": "attachment; filename=trials.csv"})

    async def export_rejected(self, request: Request) -> Response:
        """The trials the server refused (422), one row each with the body the page sent."""
        self._admin(request)
        rows = await run_in_threadpool(self.store.rejected_rows)
        text = format_row({c: c for c in REJECTED_COLUMNS}, REJECTED_COLUMNS) + "".join(
            format_row(r, REJECTED_COLUMNS) for r in rows)
        return Response(text, media_type="text/csv; charset=utf-8",
                        headers={"content-disposition": "attachment; filename=rejected.csv"})

    async def status(self, request: Request) -> Response:
        self._admin(request)
        counts, n, outs = await run_in_threadpool(lambda: (
            self.store.list_counts(), self.store.n_trials(), self.store.screen_out_counts()))
        return JSONResponse({"lists": {lid: counts.get(lid, 0) for lid in self.config.lists},
                             "trials": n,
                             "screen_outs": {r: outs.get(r, 0) for r in SCREEN_OUT_REASONS}})


def _wrap(handler):
    async def endpoint(request: Request) -> Response:
        try:
            response = await handler(request)
        except HTTPError as err:
            response = _error(err.status, str(err), **err.extra)
            if "retry_after_s" in err.extra:
                response.headers["retry-after"] = str(err.extra["retry_after_s"])
        response.headers["cache-control"] = "no-store"
        return response
    return endpoint


class SecurityHeaders:
    """ASGI middleware adding the same defensive headers to every response."""

    def __init__(self, app, headers: dict[str, str] = HEADERS):
        self.app = app
        self.headers = [(k.encode(), v.encode()) for k, v in headers.items()]

    async def __call__(self, scope, receive, send):
        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + self.headers
            await send(message)
        await self.app(scope, receive, send_with_headers if scope["type"] == "http" else send)


def load_site(site: str | Path) -> tuple[Path, StudyConfig, dict[str, list[dict]]]:
    """Read a built site's study.json and lists; raises InputError if it is not one."""
    site = Path(site)
    if not (site / "study.json").is_file() or not (site / "public" / "index.html").is_file():
        raise InputError(f"{site}: not a built study site; make one with "
                         "python -m experiment build-online")
    try:
        data = json.loads((site / "study.json").read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(f"{site / 'study.json'}: not valid JSON ({err}); rebuild the site "
                         "with python -m experiment build-online") from None
    config = StudyConfig.from_json(data, where=site / "study.json")
    lists = {}
    for lid in config.lists:
        path = site / "lists" / f"{lid}.json"
        if not path.is_file():
            raise InputError(f"{path}: list file missing; rebuild the site")
        lists[lid] = json.loads(path.read_text())["trials"]
    return site, config, lists


def check_inputs(site: str | Path, db: str | Path,
                 admin_token: str) -> tuple[Path, StudyConfig, dict[str, list[dict]]]:
    """Everything create_app checks before it opens (and maybe creates) the database."""
    site, config, lists = load_site(site)
    public = (site / "public").resolve()
    if Path(db).resolve().is_relative_to(public):
        raise InputError(f"--db {db} lies inside {public}, which is served; put it elsewhere")
    if len(admin_token) < 16:
        raise InputError("--admin-token must be at least 16 characters")
    check_output_file(db, option="--db")
    return site, config, lists


def create_app(site: str | Path, db: str | Path, admin_token: str,
               max_body: int = MAX_BODY, sync: str = "full",
               limits: ServerLimits | None = None) -> Starlette:
    """The ASGI app for one rapid-categorization study site and its database."""
    site, config, lists = check_inputs(site, db, admin_token)
    store = StudyStore(db, study_id=config.study_id, sync=sync)
    study = StudyApp(site, store, config, lists, admin_token, max_body, limits)
    app = Starlette(routes=[
        Route("/api/session", _wrap(study.start_session), methods=["POST"]),
        Route("/api/screen-out", _wrap(study.screen_out), methods=["POST"]),
        Route("/api/trials", _wrap(study.post_trial), methods=["POST"]),
        Route("/api/complete", _wrap(study.complete), methods=["POST"]),
        Route("/api/admin/export", _wrap(study.export), methods=["GET"]),
        Route("/api/admin/status", _wrap(study.status), methods=["GET"]),
        Route("/api/admin/rejected", _wrap(study.export_rejected), methods=["GET"]),
        Mount("/", StaticFiles(directory=(site / "public").resolve(), html=True)),
    ])
    app.add_middleware(SecurityHeaders)
    app.state.store = store
    return app
