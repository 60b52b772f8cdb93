"""The report's Method section: how each figure is counted, in words (issue 12: every rule).

Printed as the report's "Method"; :mod:`complaints.reports.figures` works the figures out
as these paragraphs say, and its functions' docstrings say which rows each counts.
"""

from __future__ import annotations

#: How each figure is counted; printed as the report's "Method" section.
METHOD: list[str] = [
    "Source: the complaints database written by the workflow's activities (one row per "
    "complaint, one per stage response with its due dates, one per refusal ground). Dates "
    "are Europe/London calendar dates; working days are Monday-Friday less the nation's "
    "bank holidays (and any one-off bank holiday the policy lists); a landlord's closure "
    "days never lengthen a Code timescale.",
    "Period: complaints are counted by the date received, stage 2 complaints by the date "
    "escalation was requested, responses by the date issued (the Regulator's CH02 counts "
    "responses issued in the year), refusals by the date decided, remedies with the "
    "response that offered them, Ombudsman referrals by the date referred. A complaint "
    "received in one year and answered in the next counts in CH01 for the first year and "
    "in CH02 for the second.",
    "Landlord: every complaint of the landlord is counted, whatever policy file it was "
    "handled under (a policy changed or renamed mid-year); the report names them all.",
    "Imported complaints (complaints import: the landlord's previous system's records, "
    "one row per complaint) are counted exactly as live ones: their dates are measured "
    "with the same working calendar and the same rules, strict CH02 included; the report "
    "says how many of the period's complaints were imported.",
    "CH01: stage 1 complaints received in the period, not counting complaints refused "
    "under the policy's exclusions (reported separately, Code 2 and 8.1(b)); withdrawn "
    "complaints count, as they were received. A refused complaint later taken on by the "
    "Ombudsman's order counts on the day it was taken on, never back in the year "
    "received, so a published year's figures do not change. Stage 2: escalation requests "
    "in the period not refused. Each per 1,000 homes (the policy's homes as at 31 March of "
    "the year unless overridden), in total and per tenure (LCRA, LCHO).",
    "CH02 (headline, strict: within the Complaint Handling Code timescales): a stage "
    "response issued in the period counts only when its whole chain was met. Stage 1: "
    "acknowledged on or before the acknowledgement due date (at most 5 working days of "
    "receipt, 6.2), and issued on or before the response due date (10 working days of "
    "that acknowledgement, 6.3, or the policy's stricter limit) as extended by the "
    "extensions that count. Stage 2: the same from the escalation request (6.11, 6.14). "
    "An extension counts only when agreed on or before the due date it extends (\"within\" "
    "means by the end of the due day, so an extension agreed on the due day is in time) "
    "and when the stage's extensions total at most the cap (10 working days at stage 1, "
    "6.4; 20 at stage 2, 6.15) or more with a good reason recorded; the first extension "
    "that does not count ends the chain, and the due date before it stands. Every date "
    "is the one recorded when the case ran. A response recorded before the strict rule "
    "(database revision 0012) and not resynced since counts as not within. The report "
    "lists every response that is not within, with the reason.",
    "CH02 (base, for comparison): stage responses issued in the period on or before the "
    "base due date, acknowledgements and extensions ignored.",
    "CH02 (response only, for comparison, the figure reported before the strict rule): "
    "issued on or before the base due date, or on or before the due date in force after "
    "agreed extensions when they total at most the cap or a good reason is recorded; the "
    "acknowledgement and when the extension was agreed are ignored.",
    "Withdrawn and declined complaints issue no response, so they are in neither the "
    "numerator nor the denominator of CH02; a response counts only once issued.",
    "Acknowledged within the limit: complaints received (stage 2: requests made) in the "
    "period and acknowledged by the as-of date, acknowledged on or before the due date "
    "(policy limit, at most 5 working days: 6.2, 6.11). Unacknowledged and overdue: not "
    "acknowledged by the as-of date, due before it, not refused, withdrawn or referred.",
    "Working days to respond: from the stage's clock start (day 0: the acknowledgement, "
    "or receipt / the request under a policy that counts from those) to the day the "
    "response was issued. Median: the middle value (the mean of the two middle values for "
    "an even count); 90th percentile: the nearest-rank value (the ceil(0.9 n)-th "
    "smallest).",
    "Extended: responses issued in the period whose stage had an extension. Extension "
    "reasons: extensions granted in the period, by the reason given.",
    "Resolved at stage 1: stage 1 responses issued in the period with no escalation "
    "requested by the as-of date; resolved at stage 2: stage 2 responses issued in the "
    "period. Shares are of the two together (refused or pending escalations are in "
    "neither).",
    "Outcomes: the decision recorded with each response issued in the period (upheld, "
    "partly upheld, not upheld). Remedies: offered in those responses, financial ones "
    "totalled in pounds.",
    "Outstanding actions: due in the period and completed on or before the due date; "
    "overdue = due before the as-of date and not completed by it (Code 6.6, 7.3).",
    "Remedy payments: financial remedies offered in responses issued in the period, with "
    "the payment recorded for each (pay-remedy: amount and date paid). Paid = a payment "
    "dated on or before the as-of date; paid late = dated after the date promised; unpaid "
    "and overdue = not paid by the as-of date and promised before it; no date = promised "
    "without one (before casework revision 2) (Code 7.1-7.3).",
    "Ombudsman orders: orders of the Ombudsman's determinations and instructions with a "
    "date, counted by the date recorded. On time = compliance recorded (comply-order) by "
    "the end of the due date; late = after it; outstanding = not complied with by the "
    "as-of date, overdue when due before it; stopped = the case was withdrawn.",
    "Voided cases (duplicates, merged, created in error) are not complaints: nothing of "
    "theirs is counted in any figure.",
    "Breaches: acknowledgements made in the period after their due date, and responses "
    "issued in the period outside the response timescale (response only), by the handler "
    "who had the stage (responses: who issued it) and by team (the complaint's "
    "category).",
    "Service requests (Code 1.4, 1.5; not complaints): logged = received in the period; "
    "resolved = resolved in the period, within target when on or before the target date; "
    "open and overdue = received by the period's end and not resolved by then (overdue: "
    "past the target date); converted = received in the period and converted to a "
    "complaint by its end, as a share of those logged; themes = logged by category.",
    "Learning from complaints (Code 8.1, 9): themes and root causes are those recorded "
    "against responses issued in the period (complaints learning record; a stage's date is "
    "its first response), from the vocabulary in the landlord's policy file; a response "
    "may have several, so the counts add up to more than the responses. The trend counts "
    "them by the month of the response.",
    "Year on year: the same days a year earlier, with CH01 and strict CH02 counted by the "
    "same rules (CH01 per 1,000 of the policy's homes for that year, or of the homes given "
    "for the report), its themes and its satisfaction.",
    "What changed: service changes done in the period (by the date done), and those "
    "recorded by the as-of date and not done by it, with their owner; overdue = due before "
    "the as-of date. Ombudsman determinations: recorded in the period, by finding; their "
    "orders and compliance are counted as Ombudsman orders above.",
    "Customer satisfaction with complaint handling: the results entered for each period "
    "surveyed that lies wholly within the report's period (complaints satisfaction "
    "record; periods never overlap), added up: satisfied as a share of those surveyed.",
    "The Ombudsman's annual submission (reporting years only) takes every figure from this "
    "report, CH02 always strict; it is due by 30 September after the year for a landlord "
    "with more than 1,000 homes at 31 March (1,000 or fewer: within six months of its "
    "financial year end). A Code provision's status comes from the policy check "
    "(complaints policy check); one the check does not cover is for the landlord to "
    "confirm, with the evidence pack's records shown beside it.",
]
