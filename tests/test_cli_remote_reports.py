"""The CLI's remote mode for reports and imports, and the commands that refuse it.

Against the real HTTP API on loopback (the ``served`` fixture of ``test_cli_remote``):
``report`` and ``report submission`` print (or write) what the API returns, ``import``
prints direct mode's summary and errors, and an option the API does not take is one
line. Every operator's command (``complaints.remote_scope.OPERATOR_ONLY``) refuses remote
mode in one line without touching a database, and every command is classified.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from sqlmodel import col, select

from complaints import imports, remote, remote_reports
from complaints.cli import cli
from complaints.remote_scope import LOCAL, OPERATOR_ONLY, THROUGH_API
from models.tables import PartyRow
from tests.test_cli_remote import Served, ok, one_line_error, served  # noqa: F401
from tests.test_import import ROWS, YEAR, csv_of

#: The dry run of the imported year on an empty database.
DRY_NEW = ("dry run: 15 rows would import 15, replace 0 and leave 0 unchanged; nothing "
           "was written\n")
DRY_SAME = ("dry run: 15 rows would import 0, replace 0 and leave 15 unchanged; nothing "
            "was written\n")


async def _import_year(where: Served) -> None:
    """Import the hand-worked year of ``test_import`` through the API, as the admin."""
    response = await where.api.http.post("/api/v1/imports", content=YEAR, headers={
        **where.api.auth("adm-1"), "Content-Type": "text/csv"})
    assert response.status_code == 201, response.text


async def _api_text(where: Served, path: str, **params: str) -> str:
    """What the API itself returns for ``GET path`` to a handler."""
    response = await where.api.http.get(f"/api/v1{path}", params=params,
                                        headers=where.api.auth("hdl-1"))
    assert response.status_code == 200, response.text
    return response.text


async def test_reports_print_what_the_api_returns(
        served: Served, tmp_path: Path) -> None:  # noqa: F811 - the fixture
    """The annual report (json, csv) and the submission are the API's, to stdout or --out."""
    await _import_year(served)
    for fmt in ("json", "csv"):
        printed = ok(await served.cli("report", "--year", "2025/26", "--format", fmt))
        assert printed == await _api_text(served, "/reports/annual", year="2025/26",
                                          format=fmt)
    assert "report,,complaints_imported,14\n" in printed  # the API's database, not ours
    submitted = ok(await served.cli("report", "submission", "--year", "2025/26"))
    assert submitted == await _api_text(served, "/reports/submission", year="2025/26",
                                        format="json")

    out = tmp_path / "reports" / "annual.csv"  # the folder is made, the format from .csv
    wrote = await served.cli("report", "--year", "2025/26", "--out", str(out))
    assert ok(wrote) == ""
    assert wrote.stderr.startswith(f"wrote {out}: report for 2025/26, csv from the API")
    assert out.read_text(encoding="utf-8") == await _api_text(
        served, "/reports/annual", year="2025/26", format="csv")
    sub_out = tmp_path / "submission.csv"
    ok(await served.cli("report", "submission", "--year", "2025/26", "--out", str(sub_out)))
    assert sub_out.read_text(encoding="utf-8") == await _api_text(
        served, "/reports/submission", year="2025/26", format="csv")


async def test_options_the_api_does_not_take_are_refused(
        served: Served, tmp_path: Path) -> None:  # noqa: F811 - the fixture
    """A direct-only option, or no --year, is one line naming it; nothing is written."""
    out = tmp_path / "report.md"
    for args, option in (
            (("report", "--year", "2025/26", "--homes", "1000", "--out", str(out)),
             "--homes"),
            (("report", "--from", "2025-04-01", "--to", "2025-06-30"), "--from"),
            (("report", "--year", "2025/26", "--ch02", "strict"), "--ch02"),
            (("report", "--year", "2025/26", "--evidence"), "--evidence"),
            (("report", "submission", "--year", "2025/26", "--policy", "connexus"),
             "--policy"),
            (("import", str(tmp_path), "--database-url", "sqlite://"), None)):
        result = await served.cli(*args)
        if option is None:  # a folder is refused by click before remote mode is asked
            assert result.exit_code == 2
            continue
        one_line_error(result, f"{option} cannot be used with API_URL", "unset API_URL")
    assert not out.exists()
    one_line_error(await served.cli("report", "--format", "json"),
                   "give the reporting year with --year")


async def test_import_through_the_api_says_what_direct_mode_says(
        served: Served, tmp_path: Path) -> None:  # noqa: F811 - the fixture
    """The summary and dry runs are direct mode's lines; --by and --policy are handled."""
    year = tmp_path / "year.csv"
    year.write_bytes(YEAR)
    dry = ok(await served.cli("import", str(year), "--dry-run", as_who="adm-1"))
    assert dry == ok(await served.direct("import", str(year), "--dry-run")) == DRY_NEW

    denied = await served.cli("import", str(year))  # a handler may not
    one_line_error(denied, "may not import historic complaints")
    done = await served.cli("import", str(year), "--by", "someone-else", as_who="adm-1")
    assert ok(done) == "15 rows: 15 imported, 0 replaced, 0 unchanged (import run 1)\n"
    assert "--by is ignored" in done.stderr
    assert ok(await served.direct("import", str(year), "--dry-run")) == DRY_SAME
    assert ok(await served.cli("import", str(year), "--dry-run", as_who="adm-1")) == DRY_SAME
    refused = await served.cli("import", str(year), "--policy", "connexus", as_who="adm-1")
    one_line_error(refused, "--policy cannot be used with API_URL")


async def test_an_import_is_waited_for_longer_than_other_requests(
        served: Served, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:
    """An import the API answers after TIMEOUT_S is waited for; past its own wait, one line."""
    real_import = imports.import_complaints

    def slow_import(*args: Any, **kwargs: Any) -> Any:
        time.sleep(1.5)  # a large file: the API answers once the whole file is imported
        return real_import(*args, **kwargs)

    monkeypatch.setattr(imports, "import_complaints", slow_import)
    monkeypatch.setattr(remote, "TIMEOUT_S", 0.5)
    year = tmp_path / "year.csv"
    year.write_bytes(YEAR)
    assert ok(await served.cli("import", str(year), "--dry-run", as_who="adm-1")) == DRY_NEW
    monkeypatch.setattr(remote_reports, "IMPORT_TIMEOUT_S", 1.0)
    late = await served.cli("import", str(year), "--dry-run", as_who="adm-1")
    one_line_error(late, "did not answer within 1s", "run the same command with --dry-run")


async def test_a_bad_file_is_refused_as_direct_mode_refuses_it(
        served: Served, tmp_path: Path) -> None:  # noqa: F811 - the fixture
    """One line naming the line and column; --list-problems adds one line per problem."""
    bad = tmp_path / "bad.csv"
    bad.write_bytes(csv_of([{**ROWS[0], "stage1_decision": ""}]))
    remote = await served.cli("import", str(bad), as_who="adm-1")
    line = one_line_error(remote, "line 2, field stage1_decision", "nothing was imported")
    assert line == one_line_error(await served.direct("import", str(bad)))

    worse = tmp_path / "worse.csv"
    worse.write_bytes(csv_of([{**ROWS[0], "stage1_decision": ""},
                              {**ROWS[1], "tenure": "x"}]))
    brief = await served.cli("import", str(worse), as_who="adm-1")
    one_line_error(brief, "(1 more problem: --list-problems shows them)")
    listed = await served.cli("import", str(worse), "--list-problems", as_who="adm-1")
    direct = await served.direct("import", str(worse), "--list-problems")
    assert (listed.exit_code, listed.stderr) == (direct.exit_code, direct.stderr)
    assert listed.stderr.splitlines()[:2] == [
        "line 2, field stage1_decision: required with stage1_responded_on: upheld, "
        "partly_upheld or not_upheld",
        "line 3, field tenure: must be one of lcra, lcho, other (or empty)"]


async def test_merge_asks_the_api_not_temporal(
        served: Served) -> None:  # noqa: F811 - the fixture
    """`merge` checks the other case through the API: an unknown one is the API's line."""
    reference = await served.api.lodge()
    result = await served.cli("merge", reference, "--into", "CMP-2026-999999",
                              "--explanation", "The same leak")
    one_line_error(result, "no complaint CMP-2026-999999")


async def test_add_representative_reads_the_parties_through_the_api(
        served: Served) -> None:  # noqa: F811 - the fixture
    """The parties kept are the API's recorded ones plus the representative."""
    reference = await served.api.lodge()
    ok(await served.cli("add-representative", reference, "--name", "Ann Example",
                        "--address", "9 Other Road", "--authority", "Signed form"))
    [audit] = served.audit(reference, "amend_intake")
    assert audit.by == "hdl-1"
    with served.api.context.session() as session:
        roles = session.exec(select(PartyRow.role).where(PartyRow.reference == reference)
                             .order_by(col(PartyRow.position))).all()
    assert roles == ["resident", "representative"]


def _remote_env(tmp_path: Path) -> dict[str, str | None]:
    """Remote mode at an address nobody answers, with a data folder that must stay empty."""
    return {"API_URL": "http://127.0.0.1:9", "API_TOKEN": "cmpt_0123456789ab.secret",
            "COMPLAINTS_DEBUG": None, "DATABASE_URL": None, "TEMPORAL_ADDRESS": None,
            "COMPLAINTS_ENV_FILE": str(tmp_path / "absent.env"),
            "DATA_DIR": str(tmp_path / "data")}


@pytest.mark.parametrize("command", sorted(OPERATOR_ONLY))
def test_operator_commands_refuse_remote_mode(command: str, tmp_path: Path) -> None:
    """Each operator's command or group refuses remote mode in one line, touching nothing."""
    result = CliRunner().invoke(cli, command.split(), env=_remote_env(tmp_path))
    one_line_error(result, f"`complaints {command}` needs direct access",
                   OPERATOR_ONLY[command], "unset API_URL")
    assert not (tmp_path / "data").exists()


@pytest.mark.parametrize(("args", "named"), [
    (["staff", "token", "create", "adm-1", "--label", "x"], "staff token create"),
    (["service-requests", "list", "--json"], "service-requests list"),
    (["--api", "http://127.0.0.1:9", "db", "upgrade"], "db upgrade"),
    (["learning", "show", "CMP-2026-000001"], "learning show")])
def test_subcommands_are_named_and_refused_before_their_options(args: list[str], named: str,
                                                                tmp_path: Path) -> None:
    """A subcommand is named in full, and refused before its own arguments are read."""
    env = _remote_env(tmp_path)
    if args[0] == "--api":
        env["API_URL"] = None  # --api alone turns remote mode on
    result = CliRunner().invoke(cli, args, env=env)
    one_line_error(result, f"`complaints {named}` needs direct access")


@pytest.mark.parametrize("args", [
    ["deadlines", "--from", "2026-11-02", "--working-days", "5"], ["policy", "list"],
    ["keys", "new"], ["learning", "vocabulary"], ["db", "upgrade", "--help"],
    ["permissions", "show", "-h"]])
def test_local_commands_and_help_work_in_remote_mode(args: list[str], tmp_path: Path) -> None:
    """Commands that touch neither Temporal nor a database, and help, still work."""
    result = CliRunner().invoke(cli, args, env=_remote_env(tmp_path))
    assert result.exit_code == 0, result.output
    assert result.stdout


def _commands(command: click.Command, path: tuple[str, ...] = ()) -> list[str]:
    """Every runnable command's path (a group that runs by itself counts too)."""
    if not isinstance(command, click.Group):
        return [" ".join(path)]
    found = [" ".join(path)] if path and command.invoke_without_command else []
    for name, sub in command.commands.items():
        found += _commands(sub, (*path, name))
    return found


def test_every_command_is_classified_once() -> None:
    """Each command is through the API, local or the operator's: exactly one of them."""
    def lists(path: str) -> list[str]:
        words = path.split()
        prefixes = {" ".join(words[:end]) for end in range(1, len(words) + 1)}
        return [name for name, where in (("THROUGH_API", THROUGH_API), ("LOCAL", LOCAL),
                                         ("OPERATOR_ONLY", OPERATOR_ONLY))
                if prefixes & set(where)]

    wrong = {path: lists(path) for path in _commands(cli) if len(lists(path)) != 1}
    assert wrong == {}, "classify each in complaints/remote_scope.py"
