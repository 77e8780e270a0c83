"""The ClickMe game served by ``python -m experiment serve``: the study server's sessions,
limits and security, with the game's image assignment and rounds instead of lists and trials."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from experiment.online.clickme_rules import GameConfig, check_round
from experiment.online.clickme_store import GAME_LIST, ROUND_EXPORT_COLUMNS, GameStore
from experiment.online.config import ServerLimits, StudyConfig
from experiment.online.server import (
    HEADERS,
    MAX_BODY,
    HTTPError,
    SecurityHeaders,
    StudyApp,
    _bearer,
    _read_json,
    _wrap,
)
from experiment.online.store import StudyStore
from experiment.online.validation import Invalid
from experiment.schema import format_row
from suite.errors import InputError
from suite.outputs import check_output_file

GAME_FILE = "clickme.json"
# onnxruntime-web compiles its WebAssembly: allowed for the page's own files only
GAME_HEADERS = {**HEADERS, "content-security-policy":
                HEADERS["content-security-policy"] + "; script-src 'self' 'wasm-unsafe-eval'"}
log = logging.getLogger("experiment.online.server")


def is_game_site(site: str | Path) -> bool:
    """True for a site written by build-clickme."""
    return (Path(site) / GAME_FILE).is_file()


def load_game_site(site: str | Path) -> tuple[Path, GameConfig]:
    site = Path(site)
    if not (site / GAME_FILE).is_file() or not (site / "public" / "index.html").is_file():
        raise InputError(f"{site}: not a built ClickMe site; make one with "
                         "python -m experiment build-clickme")
    try:
        data = json.loads((site / GAME_FILE).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as err:
        raise InputError(f"{site / GAME_FILE}: not valid JSON ({err}); rebuild the site") from None
    return site, GameConfig.from_json(data)


def check_game_inputs(site: str | Path, db: str | Path, admin_token: str):
    """What serve checks before it opens the database, for a game site."""
    site, cfg = load_game_site(site)
    public = (site / "public").resolve()
    if Path(db).resolve().is_relative_to(public):
        raise InputError(f"--db {db} lies inside {public}, which is served; put it elsewhere")
    if len(admin_token) < 16:
        raise InputError("--admin-token must be at least 16 characters")
    check_output_file(db, option="--db")
    return site, cfg


class GameApp(StudyApp):
    """StudyApp's session start/resume, rate limits and admin token; the game's payload,
    rounds and completion."""

    def __init__(self, site: Path, store: StudyStore, cfg: GameConfig, admin_token: str,
                 max_body: int, limits: ServerLimits | None = None):
        config = StudyConfig(study_id=cfg.study_id, lists=(GAME_LIST,), title=cfg.title,
                             completion_code=cfg.completion_code,
                             completion_url=cfg.completion_url)
        super().__init__(site, store, config, {GAME_LIST: []}, admin_token, max_body, limits)
        self.game, self.rounds = cfg, GameStore(store)
        self.pool = [im["image_id"] for im in cfg.images]

    def _payload(self, token: str, session) -> dict:
        # runs on the database thread: the first payload of a session assigns its images
        g = self.game
        images = self.rounds.assign_images(session, self.pool, g.per_participant)
        return {
            "token": token, "observer_id": session.observer_id,
            "session_id": session.session_label,
            "rounds": [{"position": k, **g.image(i)} for k, i in enumerate(images)],
            "done": self.rounds.done_positions(session),
            "completed": session.completed_utc is not None,
            "config": {k: v for k, v in g.to_json().items()
                       if k not in ("images", "completion_code", "completion_url")},
        }

    def _store_round(self, token: str, body) -> int:
        session = self._session(token)
        try:
            r = check_round(body, self.rounds.assignment(session), self.game)
        except Invalid as err:
            self.store.add_rejected(session, 422, str(err), body)
            raise HTTPError(422, str(err)) from None
        if not self.rounds.add_round(session, r["position"], r["image_id"], r["outcome"],
                                     r["points"], r["path"], r["queries"], r["client_utc"]):
            raise HTTPError(409, "round already stored", position=r["position"], duplicate=True)
        return r["position"]

    async def post_round(self, request: Request) -> Response:
        token = _bearer(request)
        body = await _read_json(request, self.max_body)
        position = await self._in_db(self._store_round, token, body)
        return JSONResponse({"stored": position}, status_code=201)

    def _complete(self, token: str) -> None:
        session = self._session(token)
        assigned = self.rounds.assignment(session)
        done = set(self.rounds.done_positions(session))
        missing = [k for k in range(len(assigned)) if k not in done]
        if missing:
            raise HTTPError(409, "rounds missing", missing=missing)
        if session.completed_utc is None and self.limits.min_duration_factor > 0:
            self._refuse_too_fast(
                session, self.limits.min_duration_factor * self.rounds.played_ms(session) / 1000,
                "its rounds' paths take", "the rounds you sent could be played")
        self.store.mark_complete(session)

    async def export_clicks(self, request: Request) -> Response:
        self._admin(request)
        rows = await run_in_threadpool(self.rounds.round_rows)
        text = format_row({c: c for c in ROUND_EXPORT_COLUMNS}, ROUND_EXPORT_COLUMNS) + "".join(
            format_row(r, ROUND_EXPORT_COLUMNS) for r in rows)
        return Response(text, media_type="text/csv; charset=utf-8",
                        headers={"content-disposition": "attachment; filename=clicks.csv"})

    async def status(self, request: Request) -> Response:
        self._admin(request)
        counts, n = await run_in_threadpool(lambda: (self.rounds.players_per_image(),
                                                     self.rounds.n_rounds()))
        return JSONResponse({"players_per_image": {i: counts.get(i, 0) for i in self.pool},
                             "rounds": n})


def create_game_app(site: str | Path, db: str | Path, admin_token: str,
                    max_body: int = MAX_BODY, sync: str = "full",
                    limits: ServerLimits | None = None) -> Starlette:
    """The ASGI app of one game site and database."""
    site, cfg = check_game_inputs(site, db, admin_token)
    store = StudyStore(db, study_id=cfg.study_id, sync=sync)
    game = GameApp(site, store, cfg, admin_token, max_body, limits)
    app = Starlette(routes=[
        Route("/api/session", _wrap(game.start_session), methods=["POST"]),
        Route("/api/rounds", _wrap(game.post_round), methods=["POST"]),
        Route("/api/complete", _wrap(game.complete), methods=["POST"]),
        Route("/api/admin/clicks", _wrap(game.export_clicks), methods=["GET"]),
        Route("/api/admin/status", _wrap(game.status), methods=["GET"]),
        Route("/api/admin/rejected", _wrap(game.export_rejected), methods=["GET"]),
        Mount("/", StaticFiles(directory=(site / "public").resolve(), html=True)),
    ])
    app.add_middleware(SecurityHeaders, headers=GAME_HEADERS)
    app.state.store = store
    app.state.game = game
    return app
