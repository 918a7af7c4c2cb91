"""Students' and TAs' text as safe HTML: markdown (markdown-it-py), formulas (``$...$``, ``$$...$$``)
as MathML (latex2mathml; browsers draw it natively), then sanitized (nh3) so that whatever HTML or
script a student writes is shown, never run. Used by the answers pages and the feedback pages."""
from __future__ import annotations

import html
import re

import latex2mathml.converter
import nh3
from markdown_it import MarkdownIt
from markdown_it.rules_inline import StateInline

MAX_LEVEL = 40  # nesting of the parsed text (a list inside a list: 2 levels); deeper is shown as written
MAX_CHARS = 100_000  # longer text is shown as written
MAX_FORMULA = 2000  # characters of LaTeX in one formula

MATHML = {"math", "mrow", "mi", "mn", "mo", "ms", "mtext", "mspace", "msub", "msup", "msubsup", "mfrac", "msqrt",
          "mroot", "mstyle", "mtable", "mtr", "mtd", "munder", "mover", "munderover", "mpadded", "mphantom",
          "menclose", "merror", "mmultiscripts", "mprescripts", "none", "semantics", "annotation"}
MATHML_ATTRIBUTES = {"display", "mathvariant", "stretchy", "fence", "separator", "lspace", "rspace", "accent",
                     "accentunder", "linethickness", "columnalign", "rowspacing", "columnspacing", "displaystyle",
                     "scriptlevel", "width", "height", "depth", "notation", "minsize", "maxsize", "movablelimits",
                     "symmetric", "largeop", "form", "mathcolor", "encoding"}
NOT_A_TAG = re.compile(rf"<(?!/?(?:{'|'.join(sorted(MATHML))})[\s/>])")
TAGS = {"p", "br", "hr", "em", "strong", "code", "pre", "blockquote", "ul", "ol", "li", "a", "h1", "h2", "h3", "h4",
        "h5", "h6", "table", "thead", "tbody", "tr", "th", "td", "s", "span", *MATHML}
ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}, "th": {"align"}, "td": {"align"}, "span": {"class"},
              **{tag: MATHML_ATTRIBUTES for tag in MATHML}}


def _math(state: StateInline, silent: bool) -> bool:
    """``$...$`` (inline) and ``$$...$$`` (display) as a ``math`` token. As in pandoc, an inline
    formula's ``$`` are next to its text (``$x$``, not ``$ x $``) and the closing one is not followed
    by a digit; a ``$`` that opens nothing ("it costs $5") stays text."""
    src, start = state.src, state.pos
    if src[start] != "$":
        return False
    marker = "$$" if src.startswith("$$", start) else "$"
    begin = start + len(marker)
    end = src.find(marker, begin)
    while end != -1 and src[end - 1] == "\\":  # an escaped dollar inside the formula
        end = src.find(marker, end + 1)
    formula = src[begin:end] if end != -1 else ""
    if not formula.strip() or (marker == "$" and (
            formula[0].isspace() or formula[-1].isspace() or src[end + 1:end + 2].isdigit())):
        return False
    if not silent:
        token = state.push("math", "math", 0)
        token.content, token.markup = formula, marker
    state.pos = end + len(marker)
    return True


def _render_math(renderer, tokens, idx, options, env) -> str:
    """A ``math`` token as MathML; as its LaTeX source (``<code>``) when it is too long, or LaTeX
    the converter cannot read."""
    token = tokens[idx]
    source = f"<code>{html.escape(token.markup + token.content + token.markup)}</code>"
    if len(token.content) > MAX_FORMULA:
        return source
    try:
        mathml = latex2mathml.converter.convert(token.content, display="block" if token.markup == "$$" else "inline")
    except Exception:  # the converter's errors are of many kinds (RecursionError included)
        return source
    return NOT_A_TAG.sub("&lt;", mathml)  # it copies \text{...} as it is: a "<" that opens no MathML tag is text


def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "maxNesting": MAX_LEVEL + 10}).enable("table").enable(
        "strikethrough")
    md.inline.ruler.before("escape", "math", _math)
    md.add_render_rule("math", _render_math)
    return md


MARKDOWN = _parser()


def sanitize(fragment: str) -> str:
    """Only the tags and attributes the rendering makes; links http, https and mailto only."""
    return nh3.clean(fragment, tags=TAGS, attributes=ATTRIBUTES, url_schemes={"http", "https", "mailto"},
                     link_rel="noopener noreferrer nofollow")


def as_text(text: str) -> str:
    """Text shown as written (line breaks kept by the page's ``white-space: pre-wrap``)."""
    return f"<div class='plain'>{html.escape(text)}</div>"


def render(text: str) -> str:
    """Markdown with formulas as safe HTML (a ``<div class='markdown'>``). Text longer than
    :data:`MAX_CHARS` or nested deeper than :data:`MAX_LEVEL` (lists, quotes) is shown as written,
    escaped, with a note.

    Args:
        text: the markdown, as a student or a TA wrote it.
    """
    if len(text) > MAX_CHARS:
        return f"<p class='note'><i>({len(text)} characters: shown as written)</i></p>" + as_text(text)
    try:
        tokens = MARKDOWN.parse(text)
        depth = max((t.level for token in tokens for t in (token, *(token.children or []))), default=0)
        body = sanitize(MARKDOWN.renderer.render(tokens, MARKDOWN.options, {})) if depth <= MAX_LEVEL else None
    except RecursionError:
        body = None
    if body is None:
        return "<p class='note'><i>(nested too deeply to format: shown as written)</i></p>" + as_text(text)
    return f"<div class='markdown'>{body}</div>"


STYLE = (".markdown p,.markdown ul,.markdown ol{margin:0.3em 0}.markdown ul,.markdown ol{padding-left:1.4em}"
         ".markdown h1,.markdown h2,.markdown h3,.markdown h4{font-size:1.1em;margin:0.4em 0}"
         ".markdown pre{background:#f4f4f4;padding:4px;overflow-x:auto}.plain{white-space:pre-wrap}"
         ".note{color:#a60;margin:0}.note+.plain{max-height:20em;overflow:auto}math[display=block]{margin:0.4em 0}")
