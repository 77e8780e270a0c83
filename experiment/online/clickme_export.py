"""``export-clicks``: a game database's rounds as the clicks CSV ``stimuli maps`` reads.

See docs/maps.md.
"""

from __future__ import annotations

from pathlib import Path

from experiment.online.clickme_store import ROUND_EXPORT_COLUMNS, GameStore
from experiment.online.export import open_for_export
from experiment.schema import write_table

QUERY_COLUMNS = ("player_id", "round_id", "image_id", "n_bubbles", "top5", "recognized")


def export_clicks(db: str | Path, out: str | Path, queries: bool = False) -> int:
    """Write every stored round (``queries``: every partner query) to ``out`` atomically."""
    store = open_for_export(db, out, "game")
    try:
        game = GameStore(store)
        rows = game.query_rows() if queries else game.round_rows()
    finally:
        store.close()
    write_table(out, rows, QUERY_COLUMNS if queries else ROUND_EXPORT_COLUMNS)
    return len(rows)


def add_arguments(parser) -> None:
    parser.add_argument("--db", required=True, help="the game's SQLite file (serve --db)")
    parser.add_argument("--out", required=True, help="output file: the clicks CSV")
    parser.add_argument("--queries", action="store_true",
                        help="write the partner's answers instead (one row per query: bubbles "
                             "so far, top 5, recognized)")


def main(args) -> int:
    n = export_clicks(args.db, args.out, queries=args.queries)
    print(f"wrote {n} {'partner queries' if args.queries else 'rounds'} to {args.out}")
    return 0
