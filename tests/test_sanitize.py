"""The lab's own texts (build-online --consent/--instructions/--debrief): hostile markup in,
only the allow-list out (experiment/online/sanitize.py)."""

import hashlib
import html.parser

import pytest

from experiment.online.sanitize import (
    ALLOWED_ATTRIBUTES,
    ALLOWED_TAGS,
    markdown_html,
    read_lab_text,
    sanitize_html,
)
from suite.errors import InputError


class _Collect(html.parser.HTMLParser):
    """Every tag and attribute a browser-like parse of the output finds."""

    def __init__(self):
        super().__init__()
        self.tags, self.attrs = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [(tag, k, v) for k, v in attrs]


def parsed(text: str) -> _Collect:
    c = _Collect()
    c.feed(text)
    c.close()
    return c


HOSTILE = [
    "<script>alert(1)</script>",
    "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
    "<img src=x onerror=alert(1)>",
    "<p onclick=alert(1) style='position:fixed'>hi</p>",
    "<a href='javascript:alert(1)'>x</a>",
    "<a href='  JaVa\tScRiPt:alert(1)'>x</a>",
    "<a href='&#106;avascript:alert(1)'>x</a>",
    "<a href='data:text/html,<script>alert(1)</script>'>x</a>",
    "<a href='vbscript:msgbox(1)'>x</a>",
    "<svg><script>alert(1)</script></svg>",
    "<svg onload=alert(1)>",
    "<iframe src=https://evil.example></iframe>",
    "<math><mtext><img src=x onerror=alert(1)></mtext></math>",
    "<style>body{display:none}</style>",
    "<form action=https://evil.example><input name=x></form>",
    "<button id=rc-agree>I agree</button>",
    "<p id=rc-agree name=x class=y>text</p>",
    "<!-- <script>alert(1)</script> -->",
    "<![CDATA[<script>alert(1)</script>]]>",
    "<scr<script>ipt>alert(1)</script>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "<noscript><p title='</noscript><img src=x onerror=alert(1)>'></noscript>",
    "<object data=x></object><embed src=x>",
    "<meta http-equiv=refresh content='0;url=https://evil.example'>",
    "<base href=https://evil.example/>",
    "<a href=https://ok.example onmouseover=alert(1)>ok</a>",
    "<td colspan='2 onmouseover=alert(1)'>x</td>",
    "<template><script>alert(1)</script></template>",
    "<textarea><script>alert(1)</script></textarea>",
    "<p>unclosed <b>bold <i>both",
]


@pytest.mark.parametrize("source", HOSTILE)
def test_hostile_markup_leaves_only_allowed_tags_and_attributes(source):
    out = sanitize_html(source)
    found = parsed(out)
    assert set(found.tags) <= ALLOWED_TAGS
    for tag, name, value in found.attrs:
        assert name in ALLOWED_ATTRIBUTES.get(tag, set()) | (
            {"target", "rel"} if tag == "a" else set()), (tag, name)
        if name == "href":
            assert value.startswith(("https:", "http:", "mailto:"))
    low = out.lower()
    for bad in ("<script", "onerror", "onclick", "onload", "onmouseover", "javascript:",
                "<iframe", "<img", "<svg", "<style", "<form", "<button", "id=", "style="):
        assert bad not in low, (bad, out)


def test_allowed_markup_is_kept_and_text_escaped():
    out = sanitize_html('<h2>Consent</h2><p>Read <a href="https://lab.example/info?a=1&b=2" '
                        'title="more">this</a> &amp; <b>agree</b> if 2 &lt; 3.</p>'
                        '<ul><li>one<li>two</ul><table><tr><td colspan="2">x</td></tr></table>')
    assert out == ('<h2>Consent</h2><p>Read <a href="https://lab.example/info?a=1&amp;b=2" '
                   'title="more" target="_blank" rel="noopener noreferrer">this</a> &amp; '
                   '<b>agree</b> if 2 &lt; 3.</p><ul><li>one<li>two</li></li></ul>'
                   '<table><tr><td colspan="2">x</td></tr></table>')


def test_dropped_tags_keep_their_text_but_script_content_goes():
    assert sanitize_html("<font color=red>Hello</font><script>x=1</script> world") == \
        "Hello world"
    assert sanitize_html("<p>a<br/>b<hr>c</p>") == "<p>a<br>b<hr>c</p>"


def test_markdown_is_rendered_and_its_raw_html_shown_as_text():
    out = markdown_html("## Consent\n\nYou **may** stop at any time.\n\n- one\n- two\n\n"
                        "[info](https://lab.example) [bad](javascript:alert(1))\n\n"
                        "<script>alert(1)</script>\n\n![img](https://x.example/a.png)")
    assert "<h2>Consent</h2>" in out and "<strong>may</strong>" in out
    assert "<ul>\n<li>one</li>" in out
    assert '<a href="https://lab.example" target="_blank" rel="noopener noreferrer">info</a>' in out
    assert "href=\"javascript" not in out and "<script" not in out and "<img" not in out
    assert "[bad](javascript:alert(1))" in out  # a refused link stays as its text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out  # raw HTML shown as text


def test_read_lab_text_records_the_file_sha256(tmp_path):
    f = tmp_path / "consent.md"
    f.write_text("# Our consent\n\nAgree?\n", encoding="utf-8")
    text = read_lab_text(f, "--consent")
    assert text.sha256 == hashlib.sha256(f.read_bytes()).hexdigest()
    assert text.format == "markdown" and "Our consent" in text.html
    assert text.record() == {"file": str(f), "sha256": text.sha256, "format": "markdown"}


@pytest.mark.parametrize("name,content,message", [
    ("c.txt", "hello", "use a Markdown"),
    ("missing.md", None, "file not found"),
    ("empty.html", "<script>only</script>", "no text left"),
    ("latin1.md", b"caf\xe9", "not UTF-8"),
])
def test_unusable_files_are_one_clear_error(tmp_path, name, content, message):
    f = tmp_path / name
    if isinstance(content, bytes):
        f.write_bytes(content)
    elif content is not None:
        f.write_text(content)
    with pytest.raises(InputError, match=message) as err:
        read_lab_text(f, "--debrief")
    assert str(err.value).startswith(f"--debrief {f}")
