"""The documented limits on what staff and integrations may send, and the check for them.

Every free-text field and every list of a staff action or an intake has a limit here,
with the reason for its number (:data:`LIMITS`), and every text is checked for characters
nobody types on purpose: controls, zero-width and bidirectional formatting characters.
:func:`problems` walks any action or intake and returns one line per fault, naming the
field by its path (``definition.points.3: 12,345 characters, at most 4,000``); it never
includes the text itself, which may be personal data.

Why a function and not stricter field types: the models are decoded inside running
Temporal workflows, and on replay every past update, signal and workflow input is decoded
again. A field type made stricter would make an already accepted payload undecodable and
break the running case. So the pydantic types (``Text``, ``Label`` in :mod:`models.case`)
stay as they were, and these rules apply where input enters the system: the CLI's
``build_action``, ``Intake.model_validate`` outside Temporal (its lodging rules use
:func:`hostile_character`), and the workflow's update validators and signal handler.
A workflow that refuses signals with :func:`problems` must put any later change of these
limits behind ``workflow.patched`` so that signals accepted before replay the same way.

Zero-width joiner and non-joiner (U+200D, U+200C) are the one exception. Persian,
Arabic-script Urdu, the Indic scripts and Sinhala need them to spell words correctly, and
emoji sequences (families, flags, skin tones with professions) are joined by U+200D, so
a resident writing in their own language must be able to send them. They do nothing
between ASCII characters or next to spaces, which is exactly where they are used to make
look-alikes (``mgr-1`` and ``mgr-1`` plus a joiner). So in free text and in people's
names and addresses a joiner is accepted only between two visible non-ASCII characters;
in staff ids and other identifiers it is always refused.

Staff ids are checked hardest: nothing but visible characters and plain spaces, and
already in Unicode normal form NFKC (which includes NFC). NFKC also folds compatibility
look-alikes (full-width ``ｍｇｒ`` is ``mgr``). Compare staff ids with :func:`staff_key`.
"""

from __future__ import annotations

import enum
import functools
import re
import typing
import unicodedata
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, StringConstraints
from pydantic.fields import FieldInfo

from models.case import Text

__all__ = [
    "BIDI_CONTROLS",
    "HOSTILE",
    "JOINERS",
    "LIMITS",
    "STAFF_ID_FIELDS",
    "ZERO_WIDTH",
    "Limit",
    "first_problem",
    "hostile_character",
    "limits_table",
    "normalise_staff_ids",
    "problems",
    "staff_key",
]


@dataclass(frozen=True)
class Limit:
    """One documented limit.

    Attributes:
        value: The largest number allowed.
        unit: ``characters`` (Unicode code points), ``items`` or ``bytes`` (UTF-8 JSON).
        reason: Why the number is what it is.
    """

    value: int
    unit: str
    reason: str


#: Every limit, by key. ``Model.field`` limits a field of that model (a list's number of
#: items, or a text's length), ``Model.field.*`` each text in a list; ``text``, ``label``
#: and ``list`` are the defaults for fields not named; ``*_bytes`` cap a whole payload.
#: The numbers are far above what a real complaints team writes, and together they bound
#: what one accepted action adds to a case's state (the byte caps bound it outright).
LIMITS: dict[str, Limit] = {
    "text": Limit(10_000, "characters",
                  "Any free text of an action not named below (an explanation, reason, "
                  "note, summary of a call): about four pages; longer belongs in a "
                  "document on the case file, not in a workflow message."),
    "label": Limit(200, "characters",
                   "Names, staff ids, categories, references: the Label type's own limit."),
    "list": Limit(50, "items",
                  "Any list not named below (refusal grounds, ...)."),
    "ComplaintDefinition.summary": Limit(
        4_000, "characters", "The complaint summarised: a paragraph or two (5.6)."),
    "ComplaintDefinition.points": Limit(
        40, "items", "Points of complaint, each answered by a finding (5.6, 6.7); "
        "complaints with more are really several complaints."),
    "ComplaintDefinition.points.*": Limit(
        4_000, "characters", "One point of complaint: a paragraph."),
    "ComplaintDefinition.outcomes_sought": Limit(
        20, "items", "Outcomes the resident seeks (5.7); the intake allows the same."),
    "ComplaintDefinition.outcomes_sought.*": Limit(
        4_000, "characters", "One outcome sought: a sentence or a paragraph."),
    "ComplaintDefinition.responsible_for": Limit(
        40, "items", "As many as the points it divides up."),
    "ComplaintDefinition.not_responsible_for": Limit(
        40, "items", "As many as the points it divides up."),
    "AddIssue.description": Limit(
        4_000, "characters", "An issue folded into stage 1 becomes a point of the "
        "definition (6.8), so it has a point's limit."),
    "Respond.findings": Limit(
        60, "items", "One finding per point: 40 points plus up to 20 issues folded in."),
    "PointFinding.point": Limit(
        4_000, "characters", "Repeats the point it answers, which is at most 4,000."),
    "PointFinding.finding": Limit(
        4_000, "characters", "The finding on one point: a paragraph (6.9d)."),
    "Respond.remedies": Limit(
        30, "items", "Remedies offered in one response (7.1)."),
    "Respond.outstanding_actions": Limit(
        30, "items", "Actions still to do after a response (6.6), each with a timer."),
    "Intake.description": Limit(
        20_000, "characters", "The resident's own account, as lodged: the Text type's "
        "limit, unchanged (a resident's words are never cut by a newer rule)."),
    "Intake.parties": Limit(
        50, "items", "Residents, representatives and group members: the field type's."),
    "Intake.outcomes_sought": Limit(20, "items", "As in the intake's lodging rules."),
    "Intake.adjustments": Limit(20, "items", "As in the intake's lodging rules."),
    "Party.address": Limit(10, "items", "Address lines, as in the lodging rules."),
    "action_bytes": Limit(
        65_536, "bytes", "One staff action as JSON: the continue-as-new payload must stay "
        "far below Temporal's 2 MiB, and a case takes dozens of actions."),
    "respond_bytes": Limit(
        131_072, "bytes", "A response repeats every point it answers, so it has twice "
        "an action's room: a whole action's worth is left for the findings."),
    "intake_bytes": Limit(
        200_000, "bytes", "A complaint as lodged, as in the intake's lodging rules."),
}

#: Fields that name a member of staff, in any model.
STAFF_ID_FIELDS = frozenset({"by", "handler_id", "manager_id", "lead_id", "owner"})
#: Short fields that hold people's names and addresses (joiners allowed, as in free text).
_HUMAN_LABELS = frozenset({"Party.name", "Party.address", "RecordContact.with_party"})

#: Zero-width and invisible characters (the joiners U+200C and U+200D are separate).
ZERO_WIDTH = frozenset(chr(c) for c in (0x200B, 0x200E, 0x200F, *range(0x2060, 0x2065),
                                        0xFEFF, 0x180E, 0x061C))
#: Bidirectional embeddings, overrides and isolates: they reorder what staff and residents
#: read (the right-to-left override once reached residents' letters).
BIDI_CONTROLS = frozenset(chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)))
#: Zero-width non-joiner and joiner: needed by some scripts and emoji (see above).
JOINERS = frozenset("\u200c\u200d")
#: Characters nobody types on purpose, in any text: C0 controls but tab, line feed and
#: carriage return; DEL and the C1 controls; zero-width and bidirectional characters.
HOSTILE = frozenset(
    [chr(c) for c in range(0x20) if chr(c) not in "\t\n\r"]
    + [chr(c) for c in range(0x7F, 0xA0)]
) | ZERO_WIDTH | BIDI_CONTROLS


def _visible_non_ascii(char: str) -> bool:
    category = unicodedata.category(char)
    return ord(char) > 0x7F and category[0] not in "CZ"


def _refused_at(text: str, index: int, *, joiners: bool) -> bool:
    """Whether ``text[index]`` is refused (``joiners``: allowed in context)."""
    char = text[index]
    if char in HOSTILE or 0xD800 <= ord(char) <= 0xDFFF:
        return True
    if char in JOINERS:
        if not joiners or index == 0 or index == len(text) - 1:
            return True
        return not (_visible_non_ascii(text[index - 1])
                    and _visible_non_ascii(text[index + 1]))
    return False


def _describe(char: str) -> str:
    code = f"U+{ord(char):04X}"
    if char in BIDI_CONTROLS:
        return f"the bidirectional control character {code}"
    if unicodedata.category(char) == "Cc":
        return f"the control character {code}"
    if unicodedata.category(char)[0] == "Z":
        return f"the special space or separator {code}"
    return f"the invisible character {code}"


def hostile_character(text: str, *, joiners: bool = True) -> str | None:
    """The first character of ``text`` nobody types on purpose, as ``U+XXXX``, or None.

    Args:
        text: Any text.
        joiners: Accept ZWNJ / ZWJ between two visible non-ASCII characters (free text,
            names); False refuses them anywhere (identifiers).

    Returns:
        The code point of the first refused character, or None when there is none.
    """
    for index, char in enumerate(text):
        if _refused_at(text, index, joiners=joiners):
            return f"U+{ord(char):04X}"
    return None


def staff_key(staff_id: str) -> str:
    """The form two staff ids are compared in: the same person gives the same key.

    Invisible and control characters are dropped (ids recorded before they were refused
    still compare equal to the clean id), compatibility look-alikes folded (NFKC) and
    case ignored (``casefold``), as ``same_person`` in the workflow compares them.
    """
    normal = unicodedata.normalize("NFKC", staff_id)
    kept = "".join(c for c in normal if unicodedata.category(c)[0] != "C"
                   and c not in JOINERS and c not in ZERO_WIDTH)
    return " ".join(kept.split()).casefold()


def normalise_staff_ids(data: Any) -> Any:
    """``data`` (JSON-like) with every staff id field put in NFKC, before validation.

    Where staff type ids (the CLI), a decomposed ``é`` or a full-width letter is made
    the same id silently instead of being refused; invisible characters are left for
    :func:`problems` to refuse, so that nothing is dropped without the sender knowing.
    """
    if isinstance(data, dict):
        return {key: unicodedata.normalize("NFKC", value)
                if key in STAFF_ID_FIELDS and isinstance(value, str)
                else normalise_staff_ids(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [normalise_staff_ids(item) for item in data]
    return data


# -- the walk ----------------------------------------------------------------------------

# get_args(Annotated[str, c]) is (str, c); mypy sees ``Text`` as plain str, with no __metadata__.
_TEXT_CONSTRAINTS: StringConstraints = typing.get_args(Text)[1]


def _string_constraints(annotation: Any) -> list[StringConstraints]:
    found = [m for m in getattr(annotation, "__metadata__", ())
             if isinstance(m, StringConstraints)]
    for arg in typing.get_args(annotation):
        found += _string_constraints(arg)
    return found


def _is_free_text(info: FieldInfo) -> bool:
    """Whether a field holds free text (the ``Text`` type) rather than a short label."""
    constraints = [m for m in info.metadata if isinstance(m, StringConstraints)]
    constraints += _string_constraints(info.annotation)
    return any(c == _TEXT_CONSTRAINTS for c in constraints) or not constraints


#: Printable ASCII (and in free text tab and newlines): nothing in it is ever refused, so
#: the character-by-character check is skipped. It keeps a flood of refused signals cheap
#: for the workflow, which checks every one within its task's time.
_PLAIN = re.compile(r"[\x20-\x7e]*\Z")
_PLAIN_TEXT = re.compile(r"[\x20-\x7e\t\n\r]*\Z")


def _check_text(text: str, where: str, key: str, field: str, free: bool,
                out: list[str]) -> None:
    staff = field in STAFF_ID_FIELDS
    limit = LIMITS.get(key) or LIMITS["text" if free and not staff else "label"]
    if len(text) > limit.value:
        out.append(f"{where}: {len(text):,} characters, at most {limit.value:,}")
    if (_PLAIN if staff else _PLAIN_TEXT).match(text):
        return
    joiners = not staff and (free or key.removesuffix(".*") in _HUMAN_LABELS)
    for index, char in enumerate(text):
        if _refused_at(text, index, joiners=joiners) or (
                staff and char != " " and unicodedata.category(char)[0] in "CZ"):
            out.append(f"{where}: contains {_describe(char)}; type it again rather than "
                       "pasting it")
            return
    if staff and unicodedata.normalize("NFKC", text) != text:
        out.append(f"{where}: is not in Unicode normal form NFKC (the same id could be "
                   "spelt two ways); type it again")


def _check_value(value: Any, where: str, key: str, field: str, free: bool,
                 out: list[str]) -> None:
    if isinstance(value, BaseModel):
        _walk(value, where, out)
    elif isinstance(value, str) and not isinstance(value, enum.Enum):
        _check_text(value, where, key, field, free, out)


class _Field(typing.NamedTuple):
    """What the walk needs of one field of a model class (see :func:`_fields`)."""

    name: str
    key: str
    free: bool


@functools.cache
def _fields(cls: type[BaseModel]) -> tuple[_Field, ...]:
    """A model class's fields as the walk sees them, worked out once per class.

    Reading a field's annotations costs more than checking its value, and the workflow
    checks every update twice (validator and handler) and every signal of a flood.
    """
    return tuple(_Field(name, f"{cls.__name__}.{name}", _is_free_text(info))
                 for name, info in cls.model_fields.items())


def _walk(model: BaseModel, path: str, out: list[str]) -> None:
    for name, key, free in _fields(type(model)):
        value = getattr(model, name)
        where = f"{path}.{name}" if path else name
        if isinstance(value, tuple | list):
            limit = LIMITS.get(key) or LIMITS["list"]
            if len(value) > limit.value:
                out.append(f"{where}: {len(value):,} items, at most {limit.value:,}")
            for index, item in enumerate(value):
                _check_value(item, f"{where}.{index}", f"{key}.*", name, free, out)
        else:
            _check_value(value, where, key, name, free, out)


def _byte_limit(model: BaseModel) -> Limit:
    key = {"Respond": "respond_bytes", "Intake": "intake_bytes"}.get(type(model).__name__)
    return LIMITS[key or "action_bytes"]


def problems(model: BaseModel) -> list[str]:
    """Every limit ``model`` breaks, one line each, naming the field by its path.

    A pure function (no clock, no I/O), safe to call in a workflow's update validator or
    signal handler. The lines never quote the text, which may be personal data.

    Args:
        model: A staff action (``models.actions``) or an ``Intake``; any pydantic model
            is walked the same way.

    Returns:
        The problems, in field order, then the payload size; empty when there are none.

    Example:
        ``["definition.points.3: 12,345 characters, at most 4,000",
        "by: contains the invisible character U+200B; type it again rather than
        pasting it"]``
    """
    out: list[str] = []
    _walk(model, "", out)
    limit = _byte_limit(model)
    size = len(model.model_dump_json().encode("utf-8", "replace"))
    if size > limit.value:
        out.append(f"the whole message is {size:,} bytes as JSON, at most {limit.value:,}: "
                   "shorten the longest texts or put them in a document on the case file")
    return out


def first_problem(model: BaseModel) -> str | None:
    """The first of :func:`problems`, or None when ``model`` keeps every limit."""
    found = problems(model)
    return found[0] if found else None


def limits_table() -> str:
    """:data:`LIMITS` as the Markdown table the README's "Limits" section carries."""
    rows = ["| what | at most | why |", "|---|---:|---|"]
    rows += [f"| `{key}` | {limit.value:,} {limit.unit} | {limit.reason} |"
             for key, limit in LIMITS.items()]
    return "\n".join(rows) + "\n"
