"""``python -m experiment serve``: serve a site (a study or a ClickMe game) and store its data.

The study server (``server``) and the game's server (``clickme_server``) are two apps over
one store; this module picks the app a site needs, checks everything before the database
is made, binds the port, and runs uvicorn.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from pathlib import Path

from experiment.online import clickme_server, server
from experiment.online.config import ServerLimits
from experiment.online.server import MAX_BODY, log
from suite.cli_types import float_in, int_at_least, int_in
from suite.errors import InputError


def check_site_inputs(site: str | Path, db: str | Path, admin_token: str):
    """What the app for ``site`` checks before it opens (and maybe creates) the database."""
    if clickme_server.is_game_site(site):
        return clickme_server.check_game_inputs(site, db, admin_token)
    return server.check_inputs(site, db, admin_token)


def create_site_app(site: str | Path, db: str | Path, admin_token: str,
                    max_body: int = MAX_BODY, sync: str = "full",
                    limits: ServerLimits | None = None):
    """The ASGI app a site needs: the ClickMe game's for a game site, else the study's."""
    if clickme_server.is_game_site(site):
        return clickme_server.create_game_app(site, db, admin_token, max_body, sync, limits)
    return server.create_app(site, db, admin_token, max_body, sync, limits)


def add_arguments(parser) -> None:
    parser.add_argument("site", help="site folder written by build-online")
    parser.add_argument("--db", required=True, help="SQLite file holding the study's data")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int_in(1, 65535), default=8000)
    parser.add_argument("--admin-token", default=os.environ.get("STUDY_ADMIN_TOKEN"),
                        help="token for /api/admin/* (default: $STUDY_ADMIN_TOKEN, else random)")
    parser.add_argument("--max-body", type=int_at_least(1024), default=MAX_BODY,
                        help="request size limit, bytes")
    parser.add_argument("--sync", choices=("full", "normal"), default="full",
                        help="SQLite durability: full = fsync every trial (default); normal = "
                             "faster, survives a server crash but not a power cut")
    d = ServerLimits()
    parser.add_argument("--sessions-per-client", type=int_at_least(0),
                        default=d.sessions_per_client,
                        help="most new sessions one client address may start per "
                             f"--session-window-s (default {d.sessions_per_client}; 0: no limit; "
                             "raise it when many participants share one address, e.g. a lab)")
    parser.add_argument("--session-window-s", type=float_in(0, 86400, low_open=True),
                        default=d.session_window_s,
                        help="window of --sessions-per-client, seconds "
                             f"(default {d.session_window_s:g})")
    parser.add_argument("--min-duration-factor", type=float_in(0, 1),
                        default=d.min_duration_factor,
                        help="refuse the completion code before the session is this × trials × "
                             "(least fixation + image) old (default "
                             f"{d.min_duration_factor:g}; 0: no check)")
    parser.add_argument("--trust-proxy", action="store_true",
                        help="count limits by the last X-Forwarded-For entry (the one your reverse "
                             "proxy adds); only when the server is reachable through that proxy "
                             "alone, as a client can send any X-Forwarded-For itself")


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to host:port, or one InputError if it cannot be (port busy, bad host)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as err:
        raise InputError(f"--host {host}: not an address this machine has ({err.strerror})") \
            from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as err:
        sock.close()
        raise InputError(f"--port {port}: cannot listen on {host}:{port} ({err.strerror}); "
                         "is another server running there? choose another --port") from None
    return sock


def main(args) -> int:
    import uvicorn

    token = args.admin_token or secrets.token_urlsafe(24)
    limits = ServerLimits(sessions_per_client=args.sessions_per_client,
                          session_window_s=args.session_window_s,
                          min_duration_factor=args.min_duration_factor,
                          trust_proxy=args.trust_proxy)
    check_site_inputs(args.site, args.db, token)
    # the port first: a busy one is refused before the database is created or anything printed
    sock = bind(args.host, args.port)
    try:
        app = create_site_app(args.site, args.db, token, args.max_body, args.sync, limits)
    except BaseException:
        sock.close()
        raise
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    print(f"serving {args.site} at http://{args.host}:{args.port}/ (data: {args.db})", flush=True)
    if not args.admin_token:
        print(f"admin token: {token}", flush=True)
    print(f"limits: {limits.sessions_per_client or 'unlimited'} new sessions per client per "
          f"{limits.session_window_s:g} s{' (X-Forwarded-For)' if limits.trust_proxy else ''}; "
          f"completion no sooner than {limits.min_duration_factor:g} × the list's least "
          "duration", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, host=args.host, port=args.port,
                                           log_level="warning"))
    server.run(sockets=[sock])
    return 0
