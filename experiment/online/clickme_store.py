"""The ClickMe game's tables, in the study database beside the sessions they belong to.

Sessions (tokens, platform ids, nonces) are the study server's own (``StudyStore``, list
``clickme``); this module adds which images each session plays and the rounds it stored,
on the same connection and writer lock, each write one transaction.
"""

from __future__ import annotations

import json
import secrets
import sqlite3

from experiment.online.store import Session, StudyStore
from suite.provenance import utc_now

GAME_LIST = "clickme"     # the list_id every game session has in the sessions table
SCHEMA = """
CREATE TABLE IF NOT EXISTS clickme_assignments (
    session INTEGER NOT NULL REFERENCES sessions (id),
    position INTEGER NOT NULL,
    image_id TEXT NOT NULL,
    PRIMARY KEY (session, position)
);
CREATE INDEX IF NOT EXISTS clickme_assignments_by_image ON clickme_assignments (image_id);
CREATE TABLE IF NOT EXISTS clickme_rounds (
    session INTEGER NOT NULL REFERENCES sessions (id),
    position INTEGER NOT NULL,
    image_id TEXT NOT NULL,
    outcome TEXT NOT NULL,
    points INTEGER NOT NULL,
    n_bubbles INTEGER NOT NULL,
    path TEXT NOT NULL,
    queries TEXT NOT NULL,
    client_utc TEXT NOT NULL,
    received_utc TEXT NOT NULL,
    PRIMARY KEY (session, position)
);
"""
ROUND_EXPORT_COLUMNS = ("image_id", "player_id", "round_id", "outcome", "points", "n_bubbles",
                        "path")


class GameStore:
    """The game's reads and writes, over a StudyStore (its connection per thread and lock)."""

    def __init__(self, store: StudyStore):
        self.store = store
        self.store._conn().executescript(SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        return self.store._conn()

    def assignment(self, session: Session) -> list[str]:
        """The session's image ids in play order (empty if none assigned yet)."""
        return [r[0] for r in self._conn().execute(
            "SELECT image_id FROM clickme_assignments WHERE session=? ORDER BY position",
            (session.id,))]

    def assign_images(self, session: Session, pool: list[str], n: int) -> list[str]:
        """The session's images; on its first call the ``n`` images of ``pool`` with the fewest
        players so far (ties at random), in random order, chosen and written in one
        BEGIN IMMEDIATE transaction, so concurrent players keep the counts within one."""
        have = self.assignment(session)
        if have:
            return have
        rng = secrets.SystemRandom()
        with self.store._write_lock:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                have = [r[0] for r in conn.execute(
                    "SELECT image_id FROM clickme_assignments WHERE session=? ORDER BY position",
                    (session.id,))]
                if not have:
                    counts = dict(conn.execute(
                        "SELECT image_id, COUNT(*) FROM clickme_assignments GROUP BY image_id"))
                    shuffled = rng.sample(pool, len(pool))
                    chosen = sorted(shuffled, key=lambda i: counts.get(i, 0))[:n]
                    rng.shuffle(chosen)
                    conn.executemany(
                        "INSERT INTO clickme_assignments (session, position, image_id) "
                        "VALUES (?,?,?)", [(session.id, k, i) for k, i in enumerate(chosen)])
                    have = chosen
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return have

    def add_round(self, session: Session, position: int, image_id: str, outcome: str,
                  points: int, path: list, queries: list, client_utc: str) -> bool:
        """Store one round (committed before returning); False if the session already has it."""
        try:
            with self.store._write_lock:
                self._conn().execute(
                    "INSERT INTO clickme_rounds (session, position, image_id, outcome, points, "
                    "n_bubbles, path, queries, client_utc, received_utc) "
                    "VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (session.id, position, image_id, outcome, points, len(path),
                     json.dumps(path, separators=(",", ":")),
                     json.dumps(queries, separators=(",", ":")), client_utc, utc_now()))
        except sqlite3.IntegrityError:
            return False
        return True

    def done_positions(self, session: Session) -> list[int]:
        return [r[0] for r in self._conn().execute(
            "SELECT position FROM clickme_rounds WHERE session=? ORDER BY position",
            (session.id,))]

    def played_ms(self, session: Session) -> float:
        """The rounds' summed durations as their paths tell (last bubble time), ms."""
        total = 0.0
        for (path,) in self._conn().execute(
                "SELECT path FROM clickme_rounds WHERE session=?", (session.id,)):
            pts = json.loads(path)
            total += pts[-1][2] if pts else 0.0
        return total

    def players_per_image(self) -> dict[str, int]:
        return dict(self._conn().execute(
            "SELECT image_id, COUNT(*) FROM clickme_assignments GROUP BY image_id"))

    def n_rounds(self) -> int:
        return self._conn().execute("SELECT COUNT(*) FROM clickme_rounds").fetchone()[0]

    def round_rows(self) -> list[dict]:
        """Every stored round as a clicks-CSV row (docs/maps.md), by session then position."""
        cur = self._conn().execute(
            "SELECT r.image_id, s.observer_id, s.session_label, r.position, r.outcome, r.points, "
            "r.n_bubbles, r.path FROM clickme_rounds r JOIN sessions s ON s.id = r.session "
            "ORDER BY r.session, r.position")
        return [{"image_id": image_id, "player_id": observer,
                 "round_id": f"{label}-{position + 1}", "outcome": outcome, "points": points,
                 "n_bubbles": n, "path": path}
                for image_id, observer, label, position, outcome, points, n, path in cur]

    def query_rows(self) -> list[dict]:
        """Every partner query of every stored round (for researchers; not in the clicks CSV)."""
        cur = self._conn().execute(
            "SELECT s.observer_id, s.session_label, r.position, r.image_id, r.queries "
            "FROM clickme_rounds r JOIN sessions s ON s.id = r.session "
            "ORDER BY r.session, r.position")
        out = []
        for observer, label, position, image_id, queries in cur:
            for q in json.loads(queries):
                out.append({"player_id": observer, "round_id": f"{label}-{position + 1}",
                            "image_id": image_id, "n_bubbles": q["n_bubbles"],
                            "top5": " ".join(map(str, q["top5"])),
                            "recognized": int(q["recognized"])})
        return out
