"""Render letter content models (``models.letters``) to plain text and HTML with Jinja2.

Templates live in ``complaints/templates/<template_set>/``; a landlord's set may override
any single template (a footer, say) and falls back to ``complaints/templates/default/``
for the rest. Rendering is deterministic: the only I/O is loading template files, and no
clock is read (the letter carries its own date).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from decimal import Decimal
from pathlib import Path

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


@functools.lru_cache(maxsize=32)
def get_environment(template_set: str = DEFAULT_TEMPLATE_SET) -> Environment:
    """Build (once per set, then cached) the Jinja environment for a template set.

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
    search = [TEMPLATES_DIR / template_set]
    if template_set != DEFAULT_TEMPLATE_SET:
        search.append(TEMPLATES_DIR / DEFAULT_TEMPLATE_SET)
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
