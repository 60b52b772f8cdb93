"""Compliance reporting from the complaints database.

The Regulator's Tenant Satisfaction Measures CH01 and CH02, the annual complaints
performance report and the committee update (Code 8.1, 9.7; Connexus policy 4.2), and the
self-assessment evidence pack, aggregated in SQL on SQLite and PostgreSQL:

- ``period``: reporting periods (``2025/26`` = 1 April 2025 - 31 March 2026);
- ``figures``: the queries and the method (how each figure counts);
- ``evidence``: the evidence pack, provision by provision;
- ``follow_through``: remedy payments and the Ombudsman's orders, to completion;
- ``model``: the report's figures as pydantic models;
- ``document``, ``render``, ``charts``: Markdown, HTML with charts, JSON and CSV;
- ``cli``: the ``complaints report``, ``evidence`` and ``synthetic`` commands.
"""

from complaints.reports.figures import METHOD, ReportOptions, build_report
from complaints.reports.model import Ch02Basis, Report
from complaints.reports.period import Period, parse_year
from complaints.reports.render import FORMATS, render

__all__ = ["FORMATS", "METHOD", "Ch02Basis", "Period", "Report", "ReportOptions",
           "build_report", "parse_year", "render"]
