"""The front door each package's ``python -m PACKAGE`` uses: a table of sub-commands.

Each sub-command lives in its own module, imported only when it is asked for (so
``python -m experiment lists`` never loads PsychoPy). A command module defines
``add_arguments(parser)`` and ``main(args) -> int``. An ``InputError`` is printed as
one line, without a traceback, and the process exits with status 2. An operating-system
error no command foresaw (a full disk, a permission lost mid-run) is printed the same way,
naming the file, with status 1: the commands check their paths first, this is the backstop.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Mapping, Sequence

from suite.errors import InputError


def dispatch(prog: str, commands: Mapping[str, tuple[str, str]],
             argv: Sequence[str] | None = None) -> int:
    """Run ``prog COMMAND …``; ``commands`` maps a name to (module path, one-line help)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    width = max(len(n) for n in commands)
    listing = "\n".join(f"  {n:<{width}}  {h}" for n, (_, h) in commands.items())
    usage = f"usage: {prog} COMMAND [options]\n\ncommands:\n{listing}\n\n" \
            f"'{prog} COMMAND --help' describes a command."
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return 0 if argv else 2
    name = argv[0]
    if name not in commands:
        print(f"{prog}: unknown command {name!r}\n\n{usage}", file=sys.stderr)
        return 2
    module = importlib.import_module(commands[name][0])
    parser = argparse.ArgumentParser(prog=f"{prog} {name}", description=commands[name][1])
    module.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    try:
        return int(module.main(args) or 0)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        where = f"{err.filename}: " if getattr(err, "filename", None) else ""
        print(f"error: {where}{err.strerror or err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
