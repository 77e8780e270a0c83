"""CSV tables as the suite writes and reads them: UTF-8, one header row, an empty cell = n/a.

Whole tables are written atomically (``write_table``); tables that grow while a session
runs are appended to one fsynced row at a time (``AppendTable``), and a last row a crash
cut short is set aside on reopening rather than mixed into the data. Which columns a
table has is its owner's business (``experiment.schema`` for trial lists and the trial
table, ``stimuli.schema`` for manifests).
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from suite.atomic import atomic_write_text
from suite.errors import InputError


class TableError(InputError):
    """A file does not have the columns (or the form) its table needs."""


def cell(value) -> str:
    """A value as a CSV cell: None and NaN empty, booleans 1/0, floats round-tripped."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        if value != value:  # NaN means not applicable
            return ""
        return repr(value) if abs(value) >= 1e-4 or value == 0 else f"{value:.6g}"
    return str(value)


def format_row(row: Mapping, columns: Iterable[str]) -> str:
    """One CSV line (with newline) for ``row`` in ``columns`` order; missing keys are empty."""
    columns = tuple(columns)
    unknown = set(row) - set(columns)
    if unknown:
        raise TableError(f"unknown column(s) {sorted(unknown)}; known: {', '.join(columns)}")
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow([cell(row.get(c)) for c in columns])
    return buf.getvalue()


def torn_path(path: str | os.PathLike) -> Path:
    """The sidecar file that keeps torn rows set aside from ``path`` (``NAME.torn``)."""
    path = Path(path)
    return path.with_name(path.name + ".torn")


def unterminated_tail(path: str | os.PathLike) -> bytes:
    """The bytes after the last newline of ``path``: a row a crash cut short (b"" if none)."""
    data = Path(path).read_bytes()
    return data[data.rfind(b"\n") + 1:]


def set_aside_torn_tail(path: str | os.PathLike) -> Path | None:
    """Move an unterminated last line of ``path`` (a row torn by a crash) to ``NAME.torn``.

    Rows are written whole, each ending in a newline, so bytes after the last newline are a
    row (or header) a crash cut short. They are appended to the sidecar file, made durable,
    and then cut from ``path``, so nothing is lost and a resumed session writes that trial
    once. Returns the sidecar's path, or None when the file ended cleanly.
    """
    path = Path(path)
    tail = unterminated_tail(path)
    if not tail:
        return None
    side = torn_path(path)
    with open(side, "ab") as fh:
        fh.write(tail + b"\n")
        fh.flush()
        os.fsync(fh.fileno())
    with open(path, "rb+") as fh:
        fh.truncate(fh.seek(0, os.SEEK_END) - len(tail))
        fh.flush()
        os.fsync(fh.fileno())
    return side


class AppendTable:
    """Append rows to a CSV, each flushed and fsynced the moment it is written.

    A header is written when the file is new or empty. An existing file must carry the
    same header, so rows of two schemas never mix. A last row a crash cut short (no
    newline) is moved to ``NAME.torn`` on opening (``set_aside``), so the trial it held is
    written again once, whole. Use as a context manager.
    """

    def __init__(self, path: str | os.PathLike, columns: Iterable[str],
                 check_row: Callable[[Mapping], None] | None = None):
        self.path = Path(path)
        self.columns = tuple(columns)
        #: Called on every row before it is written (raises to refuse it), if given.
        self.check_row = check_row
        self.path.parent.mkdir(parents=True, exist_ok=True)
        header = format_row({c: c for c in self.columns}, self.columns)
        #: Where a torn last row found on opening was moved (None if there was none).
        self.set_aside: Path | None = None
        if self.path.exists() and self.path.stat().st_size > 0:
            with open(self.path, encoding="utf-8", newline="") as fh:
                first = fh.readline()
            whole_header = first.endswith("\n")
            if first.rstrip("\r\n") != header.rstrip("\n") and not (
                    not whole_header and header.startswith(first)):
                raise TableError(
                    f"{self.path}: existing header differs from this table's columns; "
                    "write to a new file or move this one aside"
                )
            self.set_aside = set_aside_torn_tail(self.path)
        exists = self.path.exists() and self.path.stat().st_size > 0
        self._fh = open(self.path, "a", encoding="utf-8", newline="")
        if not exists:
            self._write(header)

    def _write(self, text: str) -> None:
        self._fh.write(text)
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def write(self, row: Mapping) -> None:
        """Append one row and make it durable before returning."""
        if self.check_row is not None:
            self.check_row(row)
        self._write(format_row(row, self.columns))

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def __enter__(self) -> AppendTable:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_table(path: str | os.PathLike, rows: Iterable[Mapping],
                columns: Iterable[str]) -> Path:
    """Write a whole table atomically (temp file + rename); for lists and exports."""
    columns = tuple(columns)
    text = format_row({c: c for c in columns}, columns)
    text += "".join(format_row(r, columns) for r in rows)
    return atomic_write_text(path, text)


def read_rows(path: str | os.PathLike, required: Iterable[str] = (),
              drop_unterminated: bool = False) -> list[dict]:
    """Read a CSV as a list of dicts of strings, checking the required columns are present.

    A last line cut short by a crash (fewer cells than the header) is dropped; with
    ``drop_unterminated`` so is a last line without its newline, which ``AppendTable`` sets
    aside on opening (a trial table's rows always end in one), so the two agree on what
    is done.
    """
    path = Path(path)
    if not path.exists():
        raise TableError(f"{path}: file not found")
    data = path.read_bytes()
    if drop_unterminated:
        data = data[:data.rfind(b"\n") + 1]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise TableError(f"{path}: not UTF-8 text ({err}); expected a CSV file") from None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise TableError(f"{path}: empty file, expected a header row") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise TableError(
            f"{path}: missing column(s) {', '.join(missing)}; "
            f"expected at least: {', '.join(required)}"
        )
    return [dict(zip(header, cells, strict=True)) for cells in reader if len(cells) == len(header)]


def read_header(path: str | os.PathLike, fix: str = "pass a UTF-8 CSV file") -> list[str]:
    """The first line of a CSV as stripped column names (to tell its format before reading)."""
    try:
        with open(path, encoding="utf-8") as fh:
            first = fh.readline()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read ({err}); {fix}") from None
    return [c.strip() for c in first.rstrip("\r\n").split(",")]
