"""The study database: SQLite in WAL mode.

Atomic balanced list assignment, each trial stored once.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from experiment.schema import OPTIONAL_TRIAL_COLUMNS, TRIAL_COLUMNS
from suite.errors import InputError
from suite.provenance import utc_now

# what the web runner stores and exports: the trial table plus its optional interrupted flag
WEB_TRIAL_COLUMNS = TRIAL_COLUMNS + OPTIONAL_TRIAL_COLUMNS
_TRIAL_DDL = ", ".join(f"{c} TEXT" for c in WEB_TRIAL_COLUMNS)
# attempt: 1, or the practice round when practice repeats until a criterion (a trial is
# stored once per round); a database made before it is rebuilt with attempt 1 at open
_TRIALS_TABLE = f"""CREATE TABLE IF NOT EXISTS trials (
    session INTEGER NOT NULL REFERENCES sessions (id),
    seq INTEGER NOT NULL,
    {_TRIAL_DDL},
    client_timing TEXT NOT NULL,
    received_utc TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (session, seq, attempt)
)"""
SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    observer_id TEXT NOT NULL,
    external INTEGER NOT NULL,
    source TEXT NOT NULL,
    session_label TEXT NOT NULL,
    study_label TEXT NOT NULL,
    list_id TEXT NOT NULL,
    created_utc TEXT NOT NULL,
    completed_utc TEXT,
    client TEXT NOT NULL,
    nonce_hash TEXT,
    calibration TEXT,
    stimulus_deg TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS one_session_per_external_id
    ON sessions (source, observer_id) WHERE external = 1;
CREATE INDEX IF NOT EXISTS sessions_by_list ON sessions (list_id);
{_TRIALS_TABLE};
CREATE TABLE IF NOT EXISTS screen_outs (
    id INTEGER PRIMARY KEY,
    reason TEXT NOT NULL,
    source TEXT NOT NULL,
    observer_id TEXT NOT NULL,
    created_utc TEXT NOT NULL,
    client TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS rejected_trials (
    id INTEGER PRIMARY KEY,
    session INTEGER NOT NULL REFERENCES sessions (id),
    status INTEGER NOT NULL,
    error TEXT NOT NULL,
    body TEXT NOT NULL,
    received_utc TEXT NOT NULL
);
"""
# columns added after the first release, with their DDL: an older database gains them at open
_ADDED_COLUMNS = {("sessions", "nonce_hash"): "TEXT", ("trials", "interrupted"): "TEXT",
                  ("sessions", "calibration"): "TEXT", ("sessions", "stimulus_deg"): "TEXT",
                  ("trials", "stimulus_deg"): "TEXT", ("trials", "practice_round"): "TEXT"}
# a page that keeps sending bad trials cannot fill the disk: this many kept per session
MAX_REJECTED_PER_SESSION = 1000
REJECTED_COLUMNS = ("observer_id", "session_id", "list_id", "seq", "status", "error",
                    "received_utc", "body")
# participants stopped before a list was assigned: consent declined, or the chinrest's
# estimates implausible or the screen too small (POST /api/screen-out)
SCREEN_OUT_COLUMNS = ("reason", "source", "observer_id", "created_utc", "detail", "client")
# one row per session (export --sessions): its calibration and what it has stored
SESSION_COLUMNS = ("observer_id", "session_id", "list_id", "source", "created_utc",
                   "completed_utc", "trials_stored", "px_per_cm", "distance_cm", "dpr",
                   "drawn_px", "requested_deg", "stimulus_deg")
_SESSION_SELECT = ("SELECT id, observer_id, source, session_label, list_id, completed_utc, "
                   "stimulus_deg FROM sessions")


class AlreadyStarted(Exception):
    """An external participant id (Prolific/MTurk) already has a session, and the request
    carried neither its token nor the nonce of the browser that started it."""


@dataclass(frozen=True)
class Session:
    """One participant's assignment, as stored."""

    id: int
    observer_id: str
    source: str
    session_label: str
    list_id: str
    completed_utc: str | None
    stimulus_deg: str | None = None   # the angle the page draws (virtual chinrest), as stored


def hash_token(token: str) -> str:
    """Tokens are stored hashed, so a copy of the database cannot be used to write trials."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class StudyStore:
    """Thread-safe access to one study database (a connection per thread)."""

    def __init__(self, path: str | Path, study_id: str | None = None, sync: str = "full"):
        if sync not in ("full", "normal"):
            raise InputError(f"sync must be 'full' or 'normal', got {sync!r}")
        self.path, self.sync = Path(path), sync
        self._local = threading.local()
        # one writer at a time inside this process: SQLite's own busy handler would make
        # contending threads sleep in ~100 ms steps; BEGIN IMMEDIATE still guards other processes
        self._write_lock = threading.Lock()
        conn = self._conn()
        conn.executescript(SCHEMA)
        for (table, column), ddl in _ADDED_COLUMNS.items():
            have = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
            if column not in have:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {ddl}")
        self._add_attempt(conn)
        conn.execute("CREATE UNIQUE INDEX IF NOT EXISTS sessions_by_nonce ON sessions "
                     "(nonce_hash) WHERE nonce_hash IS NOT NULL")
        if study_id is not None:
            conn.execute("BEGIN IMMEDIATE")
            row = conn.execute("SELECT value FROM meta WHERE key='study_id'").fetchone()
            if row is None:
                conn.execute("INSERT INTO meta VALUES ('study_id', ?)", (study_id,))
            conn.execute("COMMIT")
            if row is not None and row[0] != study_id:
                raise InputError(f"{self.path} belongs to study {row[0]!r}, not {study_id!r}; "
                                 "use a new --db for a new study")

    @staticmethod
    def _add_attempt(conn: sqlite3.Connection) -> None:
        """Rebuild a trials table made before practice rounds (key: session, seq) with the
        key (session, seq, attempt), its rows as attempt 1; in one transaction."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            if "attempt" not in {r[1] for r in conn.execute("PRAGMA table_info(trials)")}:
                cols = ", ".join(("session", "seq", *WEB_TRIAL_COLUMNS, "client_timing",
                                  "received_utc"))
                conn.execute("ALTER TABLE trials RENAME TO trials_before_attempt")
                conn.execute(_TRIALS_TABLE)
                conn.execute(f"INSERT INTO trials ({cols}) SELECT {cols} "
                             "FROM trials_before_attempt")
                conn.execute("DROP TABLE trials_before_attempt")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
                conn.execute("PRAGMA journal_mode=WAL")
            except sqlite3.DatabaseError as err:
                raise InputError(f"{self.path}: not a usable SQLite database ({err})") from None
            # full: a trial acknowledged to the page is on disk even if the machine loses power;
            # normal (WAL): survives a killed server, may lose the last commits on power loss
            conn.execute(f"PRAGMA synchronous={self.sync.upper()}")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    def journal_mode(self) -> str:
        return self._conn().execute("PRAGMA journal_mode").fetchone()[0]

    def assign(self, list_ids: tuple[str, ...], observer_id: str, external: bool, source: str,
               session_label: str, study_label: str, client: dict,
               nonce: str | None = None, calibration: dict | None = None
               ) -> tuple[str, Session, bool]:
        """New session on the least-used list (ties: first in list order) -> (token, session, new).

        ``nonce`` is a secret the page keeps before its first request. A retried start whose
        reply was lost carries the same nonce: it gets the session that request made (new is
        False) under a fresh token, as the first token never reached the page. Another
        browser (no nonce, or another one) with the same platform id gets AlreadyStarted.
        ``calibration``: the virtual chinrest's result (validation.calibration), stored with
        the session; its stimulus_deg goes into each of the session's trials.
        """
        token = secrets.token_urlsafe(32)
        with self._write_lock:
            return self._assign(token, list_ids, observer_id, external, source, session_label,
                                study_label, client, nonce, calibration)

    def knows_nonce(self, nonce: str) -> bool:
        """True if a session was started with ``nonce`` (a retry whose reply was lost)."""
        return self._conn().execute("SELECT 1 FROM sessions WHERE nonce_hash=?",
                                    (hash_token("nonce:" + nonce),)).fetchone() is not None

    def _assign(self, token, list_ids, observer_id, external, source, session_label,
                study_label, client, nonce, calibration) -> tuple[str, Session, bool]:
        conn = self._conn()
        nonce_hash = None if nonce is None else hash_token("nonce:" + nonce)
        # BEGIN IMMEDIATE takes the write lock before counting, so two concurrent
        # arrivals can never both see the same counts and pick the same list
        conn.execute("BEGIN IMMEDIATE")
        try:
            mine = None if nonce_hash is None else conn.execute(
                "SELECT id, observer_id, source, session_label, list_id, completed_utc, "
                "stimulus_deg, external FROM sessions WHERE nonce_hash=?",
                (nonce_hash,)).fetchone()
            if mine is not None:
                if (mine[7], mine[2]) != (int(external), source) or (
                        external and mine[1] != observer_id):
                    raise AlreadyStarted(observer_id)  # a nonce reused for someone else
                conn.execute("UPDATE sessions SET token_hash=? WHERE id=?",
                             (hash_token(token), mine[0]))
                conn.execute("COMMIT")
                return token, Session(*mine[:7]), False
            if external and conn.execute(
                    "SELECT 1 FROM sessions WHERE source=? AND observer_id=? AND external=1",
                    (source, observer_id)).fetchone():
                raise AlreadyStarted(observer_id)
            counts = dict(conn.execute(
                "SELECT list_id, COUNT(*) FROM sessions GROUP BY list_id").fetchall())
            list_id = min(list_ids, key=lambda lid: (counts.get(lid, 0), list_ids.index(lid)))
            deg = None if calibration is None else repr(calibration["stimulus_deg"])
            cur = conn.execute(
                "INSERT INTO sessions (token_hash, observer_id, external, source, session_label,"
                " study_label, list_id, created_utc, client, nonce_hash, calibration,"
                " stimulus_deg) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (hash_token(token), observer_id, int(external), source, session_label,
                 study_label, list_id, utc_now(), json.dumps(client), nonce_hash,
                 None if calibration is None else json.dumps(calibration), deg))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return (token, Session(cur.lastrowid, observer_id, source, session_label, list_id, None,
                               deg), True)

    def session_for(self, token: str) -> Session | None:
        """The session a token was issued for, or None."""
        row = self._conn().execute(_SESSION_SELECT + " WHERE token_hash=?",
                                   (hash_token(token),)).fetchone()
        return Session(*row) if row else None

    def calibration(self, session: Session) -> dict | None:
        """The session's virtual-chinrest result as stored (None: a native-size study)."""
        row = self._conn().execute("SELECT calibration FROM sessions WHERE id=?",
                                   (session.id,)).fetchone()
        return None if row is None or row[0] is None else json.loads(row[0])

    def add_trial(self, session: Session, seq: int, row: dict, client_timing: dict) -> bool:
        """Store one trial; False (and nothing written) when this session already has it."""
        cols = ("session", "seq", *WEB_TRIAL_COLUMNS, "client_timing", "received_utc",
                "attempt")
        values = (session.id, seq, *(None if row.get(c) is None else str(row[c])
                                     for c in WEB_TRIAL_COLUMNS),
                  json.dumps(client_timing), utc_now(), int(row.get("practice_round") or 1))
        try:
            with self._write_lock:
                self._conn().execute(
                    f"INSERT INTO trials ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                    values)
        except sqlite3.IntegrityError:
            return False
        return True

    def add_rejected(self, session: Session, status: int, error: str, body: object) -> bool:
        """Keep a trial the server refused, for the researchers; False once the session has
        MAX_REJECTED_PER_SESSION of them (then nothing is written)."""
        with self._write_lock:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                n = conn.execute("SELECT COUNT(*) FROM rejected_trials WHERE session=?",
                                 (session.id,)).fetchone()[0]
                if n < MAX_REJECTED_PER_SESSION:
                    conn.execute("INSERT INTO rejected_trials (session, status, error, body, "
                                 "received_utc) VALUES (?,?,?,?,?)",
                                 (session.id, status, error, json.dumps(body), utc_now()))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return n < MAX_REJECTED_PER_SESSION

    def rejected_rows(self) -> list[dict]:
        """Every refused trial (REJECTED_COLUMNS; body is the JSON the page sent), oldest first."""
        cur = self._conn().execute(
            "SELECT s.observer_id, s.session_label, s.list_id, r.status, r.error, "
            "r.received_utc, r.body FROM rejected_trials r JOIN sessions s ON s.id = r.session "
            "ORDER BY r.id")
        rows = []
        for observer, label, list_id, status, error, received, body in cur:
            seq = json.loads(body).get("seq") if body.startswith("{") else None
            rows.append({"observer_id": observer, "session_id": label, "list_id": list_id,
                         "seq": seq if type(seq) is int else "", "status": status,
                         "error": error, "received_utc": received, "body": body})
        return rows

    def done_seqs(self, session: Session) -> list[int]:
        return [r[0] for r in self._conn().execute(
            "SELECT DISTINCT seq FROM trials WHERE session=? ORDER BY seq", (session.id,))]

    def mark_complete(self, session: Session) -> None:
        with self._write_lock:
            self._conn().execute("UPDATE sessions SET completed_utc=COALESCE(completed_utc, ?) "
                                 "WHERE id=?", (utc_now(), session.id))

    def list_counts(self) -> dict[str, int]:
        return dict(self._conn().execute(
            "SELECT list_id, COUNT(*) FROM sessions GROUP BY list_id ORDER BY list_id"))

    def n_trials(self) -> int:
        return self._conn().execute("SELECT COUNT(*) FROM trials").fetchone()[0]

    def trial_rows(self) -> list[dict]:
        """Every stored trial in WEB_TRIAL_COLUMNS form, by session, then its practice
        rounds in order, then its test trials, each in list order."""
        cur = self._conn().execute(
            f"SELECT {', '.join(WEB_TRIAL_COLUMNS)} FROM trials "
            "ORDER BY session, practice IS NOT '1', attempt, seq")
        return [{c: ("" if v is None else v) for c, v in zip(WEB_TRIAL_COLUMNS, r, strict=True)}
                for r in cur]

    def screen_out(self, reason: str, source: str, observer_id: str, client: dict,
                   detail: dict) -> None:
        """Count a participant stopped before a list was assigned (no session, no slot)."""
        with self._write_lock:
            self._conn().execute(
                "INSERT INTO screen_outs (reason, source, observer_id, created_utc, client, "
                "detail) VALUES (?,?,?,?,?,?)",
                (reason, source, observer_id, utc_now(), json.dumps(client), json.dumps(detail)))

    def screen_out_counts(self) -> dict[str, int]:
        return dict(self._conn().execute(
            "SELECT reason, COUNT(*) FROM screen_outs GROUP BY reason ORDER BY reason"))

    def screen_out_rows(self) -> list[dict]:
        """Every screen-out (SCREEN_OUT_COLUMNS; detail and client as JSON), oldest first."""
        cur = self._conn().execute(f"SELECT {', '.join(SCREEN_OUT_COLUMNS)} FROM screen_outs "
                                   "ORDER BY id")
        return [dict(zip(SCREEN_OUT_COLUMNS, r, strict=True)) for r in cur]

    def session_rows(self) -> list[dict]:
        """One row per session (SESSION_COLUMNS): its calibration and trials stored."""
        cur = self._conn().execute(
            "SELECT s.observer_id, s.session_label, s.list_id, s.source, s.created_utc, "
            "s.completed_utc, s.calibration, (SELECT COUNT(*) FROM trials t "
            "WHERE t.session = s.id) FROM sessions s ORDER BY s.id")
        rows = []
        for observer, label, list_id, source, created, completed, cal, n in cur:
            cal = json.loads(cal) if cal else {}
            rows.append({"observer_id": observer, "session_id": label, "list_id": list_id,
                         "source": source, "created_utc": created,
                         "completed_utc": completed or "", "trials_stored": n,
                         **{k: cal.get(k, "") for k in SESSION_COLUMNS[7:]}})
        return rows

    def started_utc(self, session: Session) -> str:
        """When the session was assigned (ISO-8601 UTC, as stored)."""
        return self._conn().execute("SELECT created_utc FROM sessions WHERE id=?",
                                    (session.id,)).fetchone()[0]

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
