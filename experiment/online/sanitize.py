"""The lab's own texts for the study page (build-online --consent/--instructions/--debrief):
Markdown or HTML in, a strict allow-list of HTML out.

The page inserts these texts as markup, so they are rebuilt here from a parse, never passed
through: only the tags in ``ALLOWED_TAGS`` survive (others are dropped, their text kept;
``DROPPED_WITH_CONTENT`` lose their content too), only the attributes in
``ALLOWED_ATTRIBUTES`` are kept, every text and attribute value is escaped again, and a
link may point only at https:, http: or mailto: (it opens in a new tab, so the study page
stays). No ``id``, ``name``, ``class`` or ``style``: a text cannot clobber the page's own
elements (e.g. its consent buttons) or hide itself. Markdown is rendered by markdown-it-py
(CommonMark, raw HTML off) and the result goes through the same allow-list.
"""

from __future__ import annotations

import hashlib
import html
import html.parser
import re
from dataclasses import dataclass
from pathlib import Path

from suite.errors import InputError

ALLOWED_TAGS = frozenset({
    "p", "br", "hr", "h2", "h3", "h4", "strong", "b", "em", "i", "u", "small", "sub", "sup",
    "ul", "ol", "li", "blockquote", "a", "code", "pre", "span", "div",
    "table", "thead", "tbody", "tr", "th", "td",
})
VOID_TAGS = frozenset({"br", "hr"})
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "th": {"colspan", "rowspan"},
                      "td": {"colspan", "rowspan"}, "ol": {"start"}}
# elements whose content is not text for the reader: dropped whole
DROPPED_WITH_CONTENT = frozenset({
    "script", "style", "template", "noscript", "iframe", "object", "embed", "svg", "math",
    "head", "title", "textarea", "select", "button", "form", "xmp", "noembed", "noframes",
    "plaintext",
})
SAFE_SCHEMES = ("https:", "http:", "mailto:")
SUFFIXES = {".md": "markdown", ".markdown": "markdown", ".html": "html", ".htm": "html"}
MAX_BYTES = 100_000
_NUMBER = re.compile(r"^[0-9]{1,3}$")
# characters browsers ignore inside a URL scheme ("java\tscript:")
_URL_NOISE = re.compile(r"[\x00-\x20\x7f]")


def safe_url(value: str) -> str | None:
    """``value`` if it is an absolute https/http/mailto URL, else None."""
    squeezed = _URL_NOISE.sub("", value).lower()
    if not squeezed.startswith(SAFE_SCHEMES):
        return None
    return value.strip()


class _Sanitizer(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.open: list[str] = []   # allowed elements opened and not yet closed
        self.skipping: list[str] = []  # dropped-with-content elements we are inside

    def handle_starttag(self, tag, attrs):
        if self.skipping:
            if tag in DROPPED_WITH_CONTENT:
                self.skipping.append(tag)
            return
        if tag in DROPPED_WITH_CONTENT:
            self.skipping.append(tag)
            return
        if tag not in ALLOWED_TAGS:
            return
        kept = []
        for name, value in attrs:
            if name not in ALLOWED_ATTRIBUTES.get(tag, ()) or value is None:
                continue
            if name == "href":
                value = safe_url(value)
                if value is None:
                    continue
            elif name in ("colspan", "rowspan", "start") and not _NUMBER.match(value):
                continue
            kept.append(f' {name}="{html.escape(value, quote=True)}"')
        if tag == "a":
            kept.append(' target="_blank" rel="noopener noreferrer"')
        self.out.append(f"<{tag}{''.join(kept)}>")
        if tag not in VOID_TAGS:
            self.open.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag not in VOID_TAGS and not self.skipping and self.open and self.open[-1] == tag:
            self.handle_endtag(tag)

    def handle_endtag(self, tag):
        if self.skipping:
            if tag == self.skipping[-1]:
                self.skipping.pop()
            return
        if tag not in self.open:
            return
        while self.open:  # close what was left open inside it
            inner = self.open.pop()
            self.out.append(f"</{inner}>")
            if inner == tag:
                break

    def handle_data(self, data):
        if not self.skipping:
            self.out.append(html.escape(data, quote=False))

    def result(self) -> str:
        self.close()
        while self.open:
            self.out.append(f"</{self.open.pop()}>")
        return "".join(self.out)


def sanitize_html(source: str) -> str:
    """``source`` rebuilt with only the allow-listed tags, attributes and URLs, all escaped."""
    parser = _Sanitizer()
    parser.feed(source)
    return parser.result().strip()


def markdown_html(source: str) -> str:
    """Markdown (CommonMark, raw HTML shown as text) as allow-listed HTML."""
    from markdown_it import MarkdownIt

    return sanitize_html(MarkdownIt("commonmark", {"html": False}).render(source))


@dataclass(frozen=True)
class LabText:
    """One of the lab's texts as the page shows it, with where it came from."""

    option: str
    file: str
    sha256: str
    format: str
    html: str

    def record(self) -> dict:
        return {"file": self.file, "sha256": self.sha256, "format": self.format}


def read_lab_text(path: str | Path, option: str) -> LabText:
    """Read ``option FILE`` (.md or .html) as sanitized HTML; InputError naming the option and
    file when it cannot be used."""
    path = Path(path)
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise InputError(f"{option} {path}: use a Markdown (.md) or HTML (.html) file")
    if not path.is_file():
        raise InputError(f"{option} {path}: file not found")
    data = path.read_bytes()
    if len(data) > MAX_BYTES:
        raise InputError(f"{option} {path}: {len(data)} bytes; at most {MAX_BYTES} (a text "
                         "for one screen)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"{option} {path}: not UTF-8 text ({err}); save it as UTF-8") from None
    shown = markdown_html(text) if kind == "markdown" else sanitize_html(text)
    if not re.sub(r"<[^>]*>|\s|&nbsp;", "", shown):
        raise InputError(f"{option} {path}: no text left to show once the markup is removed")
    return LabText(option, str(path), hashlib.sha256(data).hexdigest(), kind, shown)
