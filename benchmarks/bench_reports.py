"""Time the compliance report on a large landlord's year: ``python benchmarks/bench_reports.py``.

Loads a synthetic year (default 200,000 complaints, seed 1, 2025/26, Connexus) into a new
SQLite file and into a throwaway PostgreSQL server (started as the tests start theirs:
``tests/pg.py``; install it with ``scripts/ensure_postgres.sh``), then times building the
report, the report with the evidence pack, and rendering Markdown and HTML, each the
fastest of three runs (the loader ends with ANALYZE, on PostgreSQL VACUUM ANALYZE, as a
database in use would have had).

The baseline, in the same run and on the same database: CH01 and CH02 alone, by raw SQL
in its cheapest form (:data:`RAW_CH01`, :data:`RAW_CH02`), checked to give the report's
own figures. ``report / raw`` is the ratio the target is set on (issue 12: the whole
annual report within 2x of it). Prints one table; ``--backends sqlite`` skips
PostgreSQL. Not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine, text

# Run as a plain script from anywhere: make the project importable.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from complaints.db import make_engine, upgrade  # noqa: E402
from complaints.policies import load_compliant_policy  # noqa: E402
from complaints.reports import ReportOptions, build_report, parse_year, render  # noqa: E402
from complaints.synthetic import load_synthetic_year  # noqa: E402

T = TypeVar("T")

#: The baseline: CH01 and CH02 alone, by hand-written SQL in its cheapest form, one
#: aggregate per table (every complaint is the landlord's, as in the synthetic year, so
#: responses need no join: voided cases are left out by NOT IN, as the report does).
RAW_CH01 = text("""
SELECT
  SUM(CASE WHEN received_on BETWEEN :start AND :end
            AND NOT (excluded OR taken_on_on IS NOT NULL) THEN 1 ELSE 0 END)
  + SUM(CASE WHEN taken_on_on BETWEEN :start AND :end THEN 1 ELSE 0 END),
  SUM(CASE WHEN escalation_requested_on BETWEEN :start AND :end
            AND NOT escalation_refused THEN 1 ELSE 0 END)
FROM complaints WHERE landlord = :landlord AND state <> 'voided'
""")
RAW_CH02 = text("""
SELECT stage, COUNT(*), SUM(CASE WHEN within_code THEN 1 ELSE 0 END)
FROM responses
WHERE responded_on BETWEEN :start AND :end
  AND reference NOT IN (SELECT reference FROM complaints WHERE state = 'voided')
GROUP BY stage ORDER BY stage
""")


def raw_ch01_ch02(engine: Engine, landlord: str, start: dt.date, end: dt.date
                  ) -> tuple[list[int], list[tuple[int, int]]]:
    """CH01 (stage 1, stage 2) and CH02 (responses, within) per stage, by raw SQL."""
    params = {"landlord": landlord, "start": start, "end": end}
    with engine.connect() as db:
        ch01 = [int(n or 0) for n in db.execute(RAW_CH01, params).one()]
        ch02 = [(int(n), int(w or 0)) for _, n, w in db.execute(RAW_CH02, params)]
    return ch01, ch02
#: How many times each report step runs; the fastest is kept.
REPEAT = 3


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    """Run ``fn`` and return its result and the seconds it took."""
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def best(fn: Callable[[], T], runs: int = REPEAT) -> tuple[T, float]:
    """Run ``fn`` ``runs`` times; its last result and the fastest time (noise kept out)."""
    results = [timed(fn) for _ in range(runs)]
    return results[-1][0], min(seconds for _, seconds in results)


@contextlib.contextmanager
def database(backend: str) -> Iterator[str]:
    """A new, empty database of ``backend``; its URL."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench-") as folder:
            yield f"sqlite:///{folder}/complaints.db"
        return
    from tests.pg import running_server

    with running_server("bench") as (_server, url):
        yield url


def bench(backend: str, complaints: int, seed: int, year: str) -> dict[str, float]:
    """Load the year into ``backend`` and time the report; seconds per step."""
    policy = load_compliant_policy("connexus")
    period = parse_year(year)
    as_of = period.end + dt.timedelta(days=180)
    with database(backend) as url:
        upgrade(url)
        engine = make_engine(url)
        summary, load = timed(lambda: load_synthetic_year(
            engine, policy, period, complaints, seed=seed, as_of=as_of,
            progress=lambda line: print(f"  {backend}: {line}", end="\r", file=sys.stderr)))
        print(file=sys.stderr)
        options = ReportOptions(period, policy, as_of=period.end)
        build_report(engine, options)  # warm the caches, as a second run would be
        raw_ch01_ch02(engine, policy.landlord, period.start, period.end)
        # The baseline and the report are timed turn about, so that a change in the
        # machine's load falls on both.
        raw_runs, report_runs = [], []
        for _ in range(REPEAT):
            raw_runs.append(timed(lambda: raw_ch01_ch02(engine, policy.landlord,
                                                        period.start, period.end)))
            report_runs.append(timed(lambda: build_report(engine, options)))
        (ch01, ch02), raw = raw_runs[-1][0], min(t for _, t in raw_runs)
        report, figures = report_runs[-1][0], min(t for _, t in report_runs)
        # The baseline must compute the same figures, or the comparison means nothing.
        assert ch01 == [c.received for c in report.ch01], (ch01, report.ch01)
        assert ch02 == [(c.responses, c.within_code) for c in report.ch02], (ch02, report.ch02)
        full, with_evidence = best(lambda: build_report(engine, options, evidence=True))
        _, markdown = best(lambda: render(full, "md"))
        _, html = best(lambda: render(full, "html"))
        engine.dispose()
    rows = sum(summary.rows.values())
    print(f"  {backend}: {summary.complaints:,} complaints, {rows:,} rows; CH01 stage 1 "
          f"{report.ch01[0].received:,}, CH02 stage 1 {report.ch02[0].pct_within_extension}%",
          file=sys.stderr)
    return {"load": load, "rows": float(rows), "raw CH01/CH02": raw, "report": figures,
            "report / raw": figures / raw,
            "report + evidence": with_evidence, "markdown": markdown, "html": html}


def main() -> None:
    """Parse the arguments, run each backend, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--complaints", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--year", default="2025/26")
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    results = {b: bench(b, args.complaints, args.seed, args.year)
               for b in args.backends.split(",")}
    steps = ["load", "raw CH01/CH02", "report", "report / raw", "report + evidence",
             "markdown", "html"]
    print(f"{args.complaints:,} synthetic complaints ({args.year}), seconds")
    print(f"{'backend':<12}" + "".join(f"{s:>19}" for s in steps) + f"{'rows':>12}")
    for backend, result in results.items():
        print(f"{backend:<12}" + "".join(f"{result[s]:>19.2f}" for s in steps)
              + f"{int(result['rows']):>12,}")


if __name__ == "__main__":
    main()
