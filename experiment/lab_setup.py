"""What a lab sets up for run-lab, checked before any window opens: the screen's calibration
(PsychoPy Monitor Center or two lengths in cm), the stimulus size in degrees, the
background colour, the lab's own instructions, and repeated practice.

The geometry itself is ``experiment.visual_angle`` (pure functions, shared with the web
runner); this module reads the lab's inputs and turns them into what the runner draws.
"""

from __future__ import annotations

import datetime as dt
import html
import html.parser
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from experiment.visual_angle import StimulusSize, plan_size, px_per_cm
from suite.errors import InputError
from suite.provenance import file_sha256

#: Instructions longer than this do not fit a screen of 26 px text.
MAX_INSTRUCTION_CHARS = 3000
INSTRUCTION_SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".txt": "text",
                        ".html": "html", ".htm": "html"}


# -- the screen's calibration ----------------------------------------------------------------

@dataclass(frozen=True)
class Calibration:
    """The physical screen: width and viewing distance in cm, and where they came from."""

    source: str                       # "monitor" (Monitor Center) or "options" (--...-cm)
    width_cm: float
    distance_cm: float
    monitor: str | None = None        # Monitor Center name
    calibration: str | None = None    # the calibration's name within that monitor
    calibration_date: str | None = None  # UTC, ISO 8601
    size_px: tuple[int, int] | None = None  # resolution the calibration was made for

    def to_dict(self) -> dict:
        return asdict(self)


def _date(value) -> str | None:
    """A Monitor Center calibDate (seconds since the epoch, or a time.struct_time) in UTC."""
    if value is None:
        return None
    if not isinstance(value, int | float):
        import time

        value = time.mktime(value)
    return dt.datetime.fromtimestamp(float(value), dt.UTC).isoformat(timespec="seconds")


def load_monitor(name: str) -> Calibration:
    """A saved PsychoPy Monitor Center calibration (the most recent one of monitor ``name``)."""
    from psychopy import monitors
    from psychopy.monitors import calibTools

    known = sorted(monitors.getAllMonitors())
    if name not in known:
        raise InputError(f"--monitor {name}: no such Monitor Center calibration in "
                         f"{calibTools.monitorFolder} (saved: {', '.join(known) or 'none'}); "
                         "create it in PsychoPy's Monitor Center (width cm, distance cm, size in "
                         "pixels) or give --screen-width-cm and --distance-cm")
    mon = monitors.Monitor(name, verbose=False, autoLog=False)
    width, distance = mon.getWidth(), mon.getDistance()
    for value, what in ((width, "screen width (cm)"), (distance, "viewing distance (cm)")):
        if not isinstance(value, int | float) or not value > 0:
            raise InputError(f"--monitor {name}: its calibration has no {what} ({value!r}); "
                             "set it in Monitor Center and save")
    size = mon.getSizePix()
    size_px = (int(size[0]), int(size[1])) if size and all(size) else None
    return Calibration("monitor", float(width), float(distance), name, mon.currentCalibName,
                       _date(mon.currentCalib.get("calibDate")), size_px)


def calibration_from_args(monitor: str | None, width_cm: float | None,
                          distance_cm: float | None) -> Calibration | None:
    """The calibration the options give: ``--monitor`` or both cm options, or none."""
    if monitor is not None and (width_cm is not None or distance_cm is not None):
        raise InputError("--monitor and --screen-width-cm/--distance-cm both given: the monitor's "
                         "calibration holds the width and distance; give one or the other")
    if monitor is not None:
        return load_monitor(monitor)
    if (width_cm is None) != (distance_cm is None):
        missing = "--distance-cm" if distance_cm is None else "--screen-width-cm"
        raise InputError(f"{missing} is missing: the angle needs both the screen's width and the "
                         "viewing distance in cm")
    if width_cm is None:
        return None
    return Calibration("options", float(width_cm), float(distance_cm))


def stimulus_sizes(calibration: Calibration | None, screen_px: tuple[int, int],
                   window_px: tuple[int, int], native_px: set[int], stimulus_deg: float | None,
                   allow_upscale: bool) -> dict[int, StimulusSize]:
    """How images of each native width are drawn, checked against the screen and the window.

    ``screen_px`` is the display's resolution (the window's, full screen); a Monitor Center
    calibration made for another resolution is refused, as its px/cm would be wrong.
    """
    ppcm = distance = None
    if calibration is not None:
        width_px = screen_px[0]
        if calibration.size_px and calibration.size_px[0] != width_px:
            raise InputError(f"--monitor {calibration.monitor}: calibrated for "
                             f"{calibration.size_px[0]}x{calibration.size_px[1]} px but the "
                             f"screen is {screen_px[0]}x{screen_px[1]} px; set the screen's "
                             "resolution or update the calibration's size in Monitor Center")
        ppcm, distance = px_per_cm(width_px, calibration.width_cm), calibration.distance_cm
    elif stimulus_deg is not None:
        raise InputError("--stimulus-deg needs the screen's calibration: --monitor NAME, or "
                         "--screen-width-cm W --distance-cm D")
    sizes = {n: plan_size(n, stimulus_deg, distance, ppcm) for n in sorted(native_px)}
    up = [s for s in sizes.values() if s.upscaled]
    if up and not allow_upscale:
        s = up[0]
        native_deg = plan_size(s.native_px, None, distance, ppcm).stimulus_deg
        raise InputError(f"--stimulus-deg {stimulus_deg:g}: needs {s.drawn_px} px on this screen "
                         f"but the images are {s.native_px} px, so they would be enlarged "
                         f"{s.scale:.2f}x (no detail is added, edges soften); pass "
                         "--allow-upscale to accept that, or ask for at most "
                         f"{native_deg:.2f}° (the native size at this distance)")
    biggest = max(s.drawn_px for s in sizes.values())
    if biggest > min(window_px):
        raise InputError(f"--stimulus-deg {stimulus_deg:g}: {biggest} px does not fit the "
                         f"{window_px[0]}x{window_px[1]} px window; ask for fewer degrees")
    return sizes


# -- colours ---------------------------------------------------------------------------------

def colour(text: str) -> tuple[int, int, int]:
    """``--background``: a colour name (CSS/X11: white, grey, gray50 is not one) or #rrggbb."""
    import argparse

    from PIL import ImageColor

    try:
        rgb = ImageColor.getrgb(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a colour name (white, grey, black, "
                                         "...) or a hex value such as #808080") from None
    return tuple(int(v) for v in rgb[:3])  # type: ignore[return-value]


def text_colour(background: tuple[int, int, int]) -> tuple[int, int, int]:
    """Black text on a light background, white on a dark one (relative luminance < 0.4)."""
    lum = (0.2126 * background[0] + 0.7152 * background[1] + 0.0722 * background[2]) / 255
    return (0, 0, 0) if lum >= 0.4 else (255, 255, 255)


# -- the lab's own instructions --------------------------------------------------------------

_SKIP_TAGS = {"script", "style", "head", "title", "template", "noscript", "iframe", "object",
              "embed", "svg", "math", "button", "form", "select", "textarea"}
_BLOCK_TAGS = {"p", "div", "br", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "tr",
               "table", "section", "article", "header", "footer", "blockquote", "pre", "hr",
               "dl", "dt", "dd", "body", "main"}


class _TextOnly(html.parser.HTMLParser):
    """The visible text of an HTML fragment: tags dropped, scripts/styles dropped whole."""

    def __init__(self, keep_lines: bool = False):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skipping = 0
        self.keep_lines = keep_lines  # Markdown around the tags: its line breaks mean something

    def handle_starttag(self, tag, attrs):
        if tag in _SKIP_TAGS:
            self.skipping += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n" if tag in ("p", "h1", "h2", "h3", "h4", "h5", "h6") else "\n")
            if tag == "li":
                self.parts.append("• ")

    def handle_endtag(self, tag):
        if tag in _SKIP_TAGS:
            self.skipping = max(0, self.skipping - 1)
        elif tag in _BLOCK_TAGS and tag != "li":  # the next item starts its own line
            self.parts.append("\n")

    def handle_startendtag(self, tag, attrs):
        if tag in ("br", "hr"):
            self.parts.append("\n")

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(data if self.keep_lines else re.sub(r"\s+", " ", data))


def html_to_text(source: str) -> str:
    """Visible text of HTML: no tag, script or style survives; paragraphs kept."""
    parser = _TextOnly()
    parser.feed(source)
    parser.close()
    return _tidy("".join(parser.parts))


def _inline_markdown(line: str) -> str:
    line = re.sub(r"!\[([^\]]*)\]\([^)]*\)", r"\1", line)            # images -> alt text
    line = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", line)             # links -> their text
    line = re.sub(r"`([^`]*)`", r"\1", line)                         # code spans
    line = re.sub(r"(\*\*|__)(.+?)\1", r"\2", line)                  # strong
    line = re.sub(r"(?<![\w*])([*_])(?!\s)(.+?)(?<!\s)\1(?![\w*])", r"\2", line)  # emphasis
    return line


def markdown_to_text(source: str) -> str:
    """Plain text of Markdown: headings, emphasis, links and lists flattened; raw HTML as text
    only (tags dropped); soft line breaks joined, blank lines keep paragraphs."""
    if re.search(r"<[A-Za-z/!]", source):
        parser = _TextOnly(keep_lines=True)
        parser.feed(source)
        parser.close()
        source = "".join(parser.parts)
    out: list[str] = []
    paragraph: list[str] = []

    def flush():
        if paragraph:
            out.append(" ".join(paragraph))
            paragraph.clear()

    for raw in source.splitlines():
        line = raw.strip()
        if not line or re.fullmatch(r"([-*_])\s*(\1\s*){2,}", line):
            flush()
            out.append("")
            continue
        line = re.sub(r"^>\s?", "", line)
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*$", line)
        item = re.match(r"([-*+]|\d+[.)])\s+(.*)", line)
        if heading:
            flush()
            out.extend([_inline_markdown(heading.group(1)), ""])
        elif item:
            flush()
            bullet = "•" if item.group(1) in "-*+" else item.group(1)
            out.append(f"{bullet} {_inline_markdown(item.group(2))}")
        else:
            hard = raw.endswith("  ") or line.endswith("\\")
            paragraph.append(_inline_markdown(line.rstrip("\\")))
            if hard:
                flush()
    flush()
    return _tidy("\n".join(out))


def _tidy(text: str) -> str:
    text = html.unescape(text) if "&" in text else text
    text = "".join(c for c in text if c in "\n\t" or c.isprintable())
    lines = [re.sub(r"[ \t]+", " ", ln).strip() for ln in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


@dataclass(frozen=True)
class Instructions:
    """A lab's instructions file as the text the runner shows, and its sha256."""

    path: str
    format: str
    sha256: str
    text: str

    def record(self) -> dict:
        return {"file": self.path, "format": self.format, "sha256": self.sha256,
                "chars": len(self.text)}


def read_instructions(path: str | Path) -> Instructions:
    """Read ``--instructions FILE`` (Markdown, HTML or plain text) as plain text for the screen.

    Nothing in the file runs: PsychoPy shows text, and HTML's scripts and styles are dropped
    with their content. ``{animal_key}`` and ``{non_animal_key}`` are replaced by the
    participant's keys when shown.
    """
    path = Path(path)
    kind = INSTRUCTION_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise InputError(f"--instructions {path}: use a .md, .html or .txt file")
    if not path.is_file():
        raise InputError(f"--instructions {path}: file not found")
    try:
        source = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"--instructions {path}: not UTF-8 text ({err})") from None
    text = {"html": html_to_text, "markdown": markdown_to_text, "text": _tidy}[kind](source)
    if not text:
        raise InputError(f"--instructions {path}: no text to show (empty once the markup is "
                         "removed)")
    if len(text) > MAX_INSTRUCTION_CHARS:
        raise InputError(f"--instructions {path}: {len(text)} characters of text; at most "
                         f"{MAX_INSTRUCTION_CHARS} fit on one screen - shorten it")
    return Instructions(str(path), kind, file_sha256(path), text)


def instructions_screen(own: Instructions | None, default: str, mapping: dict[str, str],
                        start: str) -> str:
    """The first screen's text: the lab's own (keys filled in; the key line added when the
    file does not name both keys) or the default, then how to start."""
    animal, non = mapping["animal"].upper(), mapping["non-animal"].upper()
    if own is None:
        return default.format(animal=animal, non=non, start=start)
    text = own.text.replace("{animal_key}", animal).replace("{non_animal_key}", non)
    if "{animal_key}" not in own.text or "{non_animal_key}" not in own.text:
        text += f"\n\nPress {animal} for ANIMAL and {non} for NON-ANIMAL."
    return text + f"\n\nPress space to {start}."


# -- practice rounds -------------------------------------------------------------------------

def practice_accuracy(rows: list[dict]) -> float:
    """Accuracy of a practice round: correct over trials, a timeout counting as an error."""
    return sum(int(r["correct"]) for r in rows) / len(rows) if rows else 0.0


def practice_plan(practice_rows: list[dict], done: list[dict], test_started: bool,
                  criterion: float | None, max_rounds: int) -> tuple[int, list[dict], list[dict]]:
    """Where practice stands: (round to run, its trials still to run, finished rounds' summary).

    ``done`` are the practice rows already in the session CSV (with ``practice_round``;
    an empty cell counts as round 1). A round not finished is completed first; a finished
    round below ``criterion`` is followed by another, up to ``max_rounds``, unless the test
    trials have begun. Returns round 0 and no trials when practice is over.
    """
    from experiment.session import trial_key

    by_round: dict[int, list[dict]] = {}
    for r in done:
        by_round.setdefault(int(r.get("practice_round") or 1), []).append(r)
    rounds = [{"round": k, "trials": len(v), "accuracy": practice_accuracy(v)}
              for k, v in sorted(by_round.items())]
    if not practice_rows:
        return 0, [], rounds
    last = max(by_round, default=0)
    if last == 0:
        return 1, list(practice_rows), rounds
    seen = {trial_key(r) for r in by_round[last]}
    left = [r for r in practice_rows if trial_key(r) not in seen]
    if left:
        return last, left, rounds[:-1]
    if test_started or criterion is None or rounds[-1]["accuracy"] >= criterion \
            or last >= max_rounds:
        return 0, [], rounds
    return last + 1, list(practice_rows), rounds
