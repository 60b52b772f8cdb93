"""Render letter content models (``models.letters``) to plain text, HTML and PDF.

Templates live in ``complaints/templates/<template_set>/``; a landlord's set may override
any single template (a footer, say) and falls back to ``complaints/templates/default/``
for the rest. Rendering is deterministic: the only I/O is loading template files, and no
clock is read (the letter carries its own date).

``check_complete`` holds a rendered letter to what the Code requires of it: every
element of ``letter.required_elements()`` must appear in the plain text and in the HTML's
visible text, whichever templates rendered it. ``render_pdf`` prints the HTML to a tagged
(PDF/UA-1) PDF with WeasyPrint.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections.abc import Mapping
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined

from models.case import Decision, Party, RemedyKind
from models.letters import (
    ACTION_STATUS_TEXT,
    DECISION_TEXT,
    OMBUDSMAN_REFERRAL_MONTHS,
    REMEDY_KIND_TEXT,
    ActionStatus,
    Letter,
    RenderedLetter,
    format_money,
    format_uk_date,
    plural,
)

#: Where template sets live.
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
#: The set every other set falls back to.
DEFAULT_TEMPLATE_SET = "default"

_TEMPLATE_SET_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_BLANK_LINES = re.compile(r"\n{3,}")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")


def ukdate(value: dt.date) -> str:
    """Jinja filter: ``Monday 5 January 2026``.

    Args:
        value: A date.

    Returns:
        The date as UK letters write it.

    """
    return format_uk_date(value)


def money(value: Decimal | int | float | str) -> str:
    """Jinja filter: ``£1,250.00``.

    Args:
        value: An amount in GBP.

    Returns:
        The amount with a pound sign, thousands separators and pence.

    """
    return format_money(value)


def decision(value: Decision | str) -> str:
    """Jinja filter: the decision in words (``Upheld``, ``Partly upheld``, ``Not upheld``).

    Args:
        value: A ``Decision`` or its value.

    Returns:
        The human wording of the decision.

    """
    return DECISION_TEXT[Decision(value)]


def names(parties: tuple[Party, ...] | list[Party]) -> str:
    """Jinja filter: join recipients' names for a salutation (``A, B and C``).

    Args:
        parties: The recipients.

    Returns:
        Their names joined with commas and a final "and".

    """
    people = [p.name for p in parties]
    if len(people) <= 1:
        return "".join(people)
    return ", ".join(people[:-1]) + " and " + people[-1]


def remedy_kind(value: RemedyKind | str) -> str:
    """Jinja filter: a remedy kind in words (``Financial remedy``...).

    Args:
        value: A ``RemedyKind`` or its value.

    Returns:
        The human wording of the remedy kind.

    """
    return REMEDY_KIND_TEXT[RemedyKind(value)]


def action_status(value: ActionStatus | str) -> str:
    """Jinja filter: the sentence reporting an action's status.

    Args:
        value: An ``ActionStatus`` or its value.

    Returns:
        For example ``"This action has been delayed."``.

    """
    return ACTION_STATUS_TEXT[ActionStatus(value)]


def _autoescape(template_name: str | None) -> bool:
    """Escape HTML templates only; text templates and ad-hoc strings stay literal."""
    if template_name is None:
        return False
    return template_name.endswith((".html.j2", ".html"))


def get_environment(template_set: str = DEFAULT_TEMPLATE_SET) -> Environment:
    """Build (once per set and templates folder, then cached) a set's Jinja environment.

    A set that has no directory simply uses the default templates.

    Args:
        template_set: Name of a directory under ``complaints/templates/``.

    Returns:
        An environment whose loader tries the set first, then ``default``.

    Raises:
        ValueError: If ``template_set`` is not a plain lower-case directory name.

    """
    if not _TEMPLATE_SET_NAME.fullmatch(template_set):
        raise ValueError(f"invalid template set name: {template_set!r}")
    return _environment(TEMPLATES_DIR, template_set)


def resolve_template_set(name: str) -> str:
    """Return ``name`` when it names a template folder, else the default set's name.

    Args:
        name: A landlord's template set (its policy name).

    Returns:
        The set letters for that landlord are rendered with.

    """
    if _TEMPLATE_SET_NAME.fullmatch(name) and (TEMPLATES_DIR / name).is_dir():
        return name
    return DEFAULT_TEMPLATE_SET


@functools.lru_cache(maxsize=32)
def _environment(root: Path, template_set: str) -> Environment:
    """The environment of a set under ``root`` (cached per folder and set)."""
    search = [root / template_set]
    if template_set != DEFAULT_TEMPLATE_SET:
        search.append(root / DEFAULT_TEMPLATE_SET)
    env = Environment(
        loader=ChoiceLoader([FileSystemLoader(str(path)) for path in search]),
        undefined=StrictUndefined,
        autoescape=_autoescape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    env.filters["ukdate"] = ukdate
    env.filters["money"] = money
    env.filters["decision"] = decision
    env.filters["names"] = names
    env.filters["plural"] = plural
    env.filters["remedy_kind"] = remedy_kind
    env.filters["action_status"] = action_status
    env.globals["referral_months"] = OMBUDSMAN_REFERRAL_MONTHS
    return env


def _tidy_text(text: str) -> str:
    """Strip trailing spaces and collapse runs of blank lines in a plain-text letter."""
    text = _TRAILING_SPACE.sub("\n", text)
    return _BLANK_LINES.sub("\n\n", text).strip() + "\n"


def render_letter(letter: Letter, template_set: str = DEFAULT_TEMPLATE_SET) -> RenderedLetter:
    """Render a letter to plain text and HTML.

    Args:
        letter: The letter's content.
        template_set: The landlord's template set; templates it lacks come from
            ``default``.

    Returns:
        The subject, the plain-text letter and the HTML letter.

    Raises:
        jinja2.TemplateNotFound: If no template exists for the letter kind.
        jinja2.UndefinedError: If a template uses a variable that is not provided.

    """
    env = get_environment(template_set)
    subject = letter.subject()
    context = {"letter": letter, "subject": subject, "ombudsman": letter.ombudsman}
    text = env.get_template(f"{letter.kind.value}.txt.j2").render(context)
    html = env.get_template(f"{letter.kind.value}.html.j2").render(context)
    return RenderedLetter(subject=subject, text=_tidy_text(text), html=html)


# -- the Code's elements, checked on what was rendered --------------------------------------

#: Elements whose content is never seen: the document head, scripts, styles, templates.
_UNSEEN_ELEMENTS = frozenset({"head", "title", "script", "style", "template", "noscript"})
#: Elements with no end tag.
_VOID_ELEMENTS = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input",
                            "link", "meta", "source", "track", "wbr"})
#: Inline elements: text on either side of their tags runs on without a break.
_INLINE_ELEMENTS = frozenset({"a", "abbr", "b", "bdi", "bdo", "cite", "code", "data", "dfn",
                              "em", "i", "kbd", "mark", "q", "s", "samp", "small", "span",
                              "strong", "sub", "sup", "time", "u", "var"})
_HIDING_STYLE = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden", re.IGNORECASE)


def squash(value: str) -> str:
    """Collapse every run of whitespace to one space and strip the ends.

    Args:
        value: Any text.

    Returns:
        The text as a reader sees it, whatever its line breaks and indentation.

    """
    # str.split() breaks on exactly what the regex \s+ matches, so this is the same text
    # as collapsing with re.sub and stripping, in a quarter of the time: every letter
    # goes through here on every check.
    return " ".join(value.split())


class _VisibleText(HTMLParser):
    """Collect the text a reader of an HTML letter sees (see ``visible_text``)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._hidden_tag: str | None = None
        self._hidden_depth = 0

    @staticmethod
    def _hides(tag: str, attrs: list[tuple[str, str | None]]) -> bool:
        if tag in _UNSEEN_ELEMENTS:
            return True
        for name, value in attrs:
            if name == "hidden" or (name == "aria-hidden" and (value or "").lower() == "true"):
                return True
            if name == "style" and value and _HIDING_STYLE.search(value):
                return True
        return False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._hidden_tag is not None:
            self._hidden_depth += tag == self._hidden_tag
            return
        if tag not in _VOID_ELEMENTS and self._hides(tag, attrs):
            self._hidden_tag, self._hidden_depth = tag, 1
            return
        if tag not in _INLINE_ELEMENTS:
            self.parts.append(" ")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._hidden_tag is None and tag not in _INLINE_ELEMENTS:
            self.parts.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if self._hidden_tag is not None:
            if tag == self._hidden_tag:
                self._hidden_depth -= 1
                if self._hidden_depth == 0:
                    self._hidden_tag = None
            return
        if tag not in _INLINE_ELEMENTS:
            self.parts.append(" ")

    def handle_data(self, data: str) -> None:
        if self._hidden_tag is None:
            self.parts.append(data)


def visible_text(document: str) -> str:
    """Return the text an HTML letter shows its reader, whitespace collapsed.

    Character references are decoded; the head (title included), scripts, styles and
    elements marked ``hidden``, ``aria-hidden="true"`` or hidden by an inline style are
    left out; block elements and line breaks separate words, inline elements (``strong``,
    ``a``...) do not. A stylesheet rule that hides a class is not seen: templates are the
    landlord's own, and this catches omissions, not concealment.

    Args:
        document: An HTML document or fragment.

    Returns:
        Its visible text on one line.

    """
    parser = _VisibleText()
    parser.feed(document)
    parser.close()
    return squash("".join(parser.parts))


def missing_elements(elements: Mapping[str, str],
                     rendered: RenderedLetter) -> dict[str, tuple[str, ...]]:
    """Find the required elements a rendered letter leaves out.

    Both sides are compared with whitespace collapsed: a line break in a template or a
    blank line tidied away never counts as a difference.

    Args:
        elements: ``letter.required_elements()``: label -> text.
        rendered: The letter as rendered.

    Returns:
        Label -> the formats (``"text"``, ``"html"``) that lack it; empty when complete.

    """
    text = squash(rendered.text)
    shown = visible_text(rendered.html)
    missing: dict[str, tuple[str, ...]] = {}
    for label, value in elements.items():
        wanted = squash(value)
        formats = tuple(name for name, body in (("text", text), ("html", shown))
                        if wanted not in body)
        if formats:
            missing[label] = formats
    return missing


class LetterIncomplete(ValueError):
    """A rendered letter lacks elements the Code requires (see ``check_complete``).

    Its message names the missing provisions by label, the letter kind and the template
    set, never the values: they may be personal data.

    Attributes:
        missing: Label -> the formats that lack it.
        template_set: The set the letter was rendered with.

    """

    def __init__(self, kind: str, template_set: str,
                 missing: Mapping[str, tuple[str, ...]]) -> None:
        self.kind = kind
        self.template_set = template_set
        self.missing = dict(missing)
        groups = []
        for formats, where in ((("text", "html"), "from text and HTML"),
                               (("text",), "from text only"), (("html",), "from HTML only")):
            labels = [label for label, found in self.missing.items() if found == formats]
            if labels:
                groups.append(f"{where}: {', '.join(labels)}")
        # One line, template set first: the workflow passes on the first 500 characters.
        super().__init__(f"{kind} letter from template set {template_set!r} lacks "
                         f"{len(self.missing)} required element(s), by label: "
                         + "; ".join(groups))


def check_complete(letter: Letter, rendered: RenderedLetter,
                   template_set: str = DEFAULT_TEMPLATE_SET) -> None:
    """Make sure a rendered letter says everything the Code requires of it.

    Args:
        letter: The letter's content.
        rendered: What the templates made of it.
        template_set: The set it was rendered with (named in the error).

    Raises:
        LetterIncomplete: When any element of ``letter.required_elements()`` is missing
            from the plain text or from the HTML's visible text.

    """
    missing = missing_elements(letter.required_elements(), rendered)
    if missing:
        raise LetterIncomplete(letter.kind.value, template_set, missing)


# -- PDF -------------------------------------------------------------------------------------

#: The PDF variant asked of WeasyPrint: PDF/UA-1, a tagged PDF for assistive technology.
PDF_VARIANT = "pdf/ua-1"


@functools.lru_cache(maxsize=1)
def _weasyprint() -> tuple[Any, Any, bool]:
    """WeasyPrint's ``HTML``, a fetcher that fetches nothing, and PDF/UA support.

    Imported on first use: the import takes most of a second, and only the worker prints.
    """
    import weasyprint
    from weasyprint.pdf import VARIANTS

    fetcher = weasyprint.URLFetcher(allowed_protocols=frozenset(), timeout=1)
    return weasyprint.HTML, fetcher, PDF_VARIANT in VARIANTS


def render_pdf(rendered: RenderedLetter) -> bytes:
    """Print a rendered letter's HTML to an accessible PDF.

    The PDF is PDF/UA-1 (tagged, with the document title shown and its language set) when
    WeasyPrint supports that variant, else a tagged PDF. Its title is the ``<title>`` of
    the HTML (the letter's subject) and its language the ``lang`` of ``<html>`` (en-GB).
    Nothing outside the document is fetched (letters load no assets). The same HTML gives
    the same bytes.

    Args:
        rendered: The letter as rendered.

    Returns:
        The PDF.

    """
    html_class, fetcher, has_ua = _weasyprint()
    document = html_class(string=rendered.html, url_fetcher=fetcher, base_url=None)
    if has_ua:
        return bytes(document.write_pdf(pdf_variant=PDF_VARIANT))
    return bytes(document.write_pdf(pdf_tags=True))
