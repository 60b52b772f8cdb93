"""The CLI's remote mode against the real HTTP API: uvicorn on loopback, a real worker.

The API is the one :func:`tests.api_support.running_api` builds (staff seeded, a service
token each), served by uvicorn on a free loopback port in the test's event loop, beside
the worker. The ``complaints`` commands run in-process through click's ``CliRunner`` in a
thread, with ``API_URL`` and ``API_TOKEN`` in their environment, as staff run them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO, cast

import pytest_asyncio
import structlog
from click.testing import CliRunner, Result
from sqlmodel import select

from complaints.api.app import create_app
from complaints.cli import cli
from complaints.dev import _embedded_server, bind_web_socket
from models.messages import CaseView
from models.tables import AuditRow, DocumentRow, TriageRow
from tests.api_support import Api, acknowledge_body, running_api
from tests.conftest import Stack


@dataclass(eq=False)  # hashable and weakly referable, as structlog's write locks need
class Pinned:
    """A text stream under another identity, so that structlog keeps writing to it.

    Given the very stream it imported, structlog prints to ``sys.stdout`` of the moment
    (CliRunner's, while a command runs); given this, to the stream pinned here.
    """

    stream: TextIO

    def write(self, text: str) -> int:
        """Write to the pinned stream."""
        return self.stream.write(text)

    def flush(self) -> None:
        """Flush the pinned stream."""
        self.stream.flush()


@dataclass
class Served:
    """The API on a loopback port, and the test's staff with their tokens."""

    api: Api
    url: str

    async def cli(self, *args: str, as_who: str | None = "hdl-1",
                  api_url: str | None = None) -> Result:
        """Run ``complaints ARGS`` with API_URL and ``as_who``'s token (None: no token)."""
        env = {"API_URL": api_url or self.url,
               "API_TOKEN": self.api.tokens[as_who] if as_who else None,
               "COMPLAINTS_DEBUG": None}
        return await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=env)

    async def direct(self, *args: str) -> Result:
        """Run ``complaints ARGS`` directly, as operators do: the test's database and Temporal."""
        settings = self.api.context.settings
        env = {"API_URL": None, "API_TOKEN": None, "COMPLAINTS_DEBUG": None,
               "DATA_DIR": str(settings.data_dir),
               "DATABASE_URL": settings.effective_database_url(),
               "OUTBOX_DIR": str(settings.effective_outbox()),
               "TEMPORAL_ADDRESS": self.api.stack.env.client.service_client.config.target_host,
               "TEMPORAL_TASK_QUEUE": settings.temporal_task_queue}
        return await asyncio.to_thread(CliRunner().invoke, cli, list(args), env=env)

    def audit(self, reference: str, action: str) -> list[AuditRow]:
        """The case's audit rows of ``action``."""
        with self.api.context.session() as session:
            return list(session.exec(select(AuditRow).where(AuditRow.reference == reference,
                                                            AuditRow.action == action)))


@pytest_asyncio.fixture
async def served(stack: Stack) -> AsyncIterator[Served]:
    """The API of ``running_api`` served by uvicorn on 127.0.0.1, a worker running."""
    import uvicorn

    # CliRunner swaps sys.stdout for the whole process while a command runs; the worker's
    # structlog lines (printed to sys.stdout as it is when they are written) would land
    # in the command's output, so they are pinned to the stream of now.
    # From structlog's defaults: a CLI test before this one may have configured the stdlib
    # processors (complaints.logs), which cannot run on a PrintLogger.
    previous = structlog.get_config()
    structlog.reset_defaults()
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(
        file=cast(TextIO, Pinned(sys.stdout))))
    async with running_api(stack) as api:
        sock = bind_web_socket(0)
        port = sock.getsockname()[1]
        server = _embedded_server(uvicorn.Config(
            create_app(context=api.context), lifespan="off", log_config=None,
            access_log=False))
        task = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            assert not task.done(), "uvicorn stopped while starting"
            await asyncio.sleep(0.05)
        try:
            yield Served(api, f"http://127.0.0.1:{port}")
        finally:
            server.should_exit = True
            await asyncio.wait_for(task, 10)
            sock.close()
            structlog.configure(**previous)


def ok(result: Result) -> str:
    """The standard output of a command that succeeded."""
    assert result.exit_code == 0, result.output
    return result.stdout


def one_line_error(result: Result, *needles: str) -> str:
    """The command failed with exit 1 printing one ``Error:`` line holding ``needles``."""
    assert result.exit_code == 1, result.output
    [line] = [x for x in result.stderr.strip().splitlines() if not x.startswith("note:")]
    assert line.startswith("Error: ") and "Traceback" not in result.output
    for needle in needles:
        assert needle in line, line
    return line


async def test_lodge_act_status_and_list_through_the_api(served: Served) -> None:
    """Staff lodge once, acknowledge as the token's holder, then see the case and the list."""
    lodge = ("lodge", "--channel", "phone", "--channel-reference", f"call-{served.api.salt}",
             "--received", dt.date.today().isoformat(), "--resident", "Jo Bloggs",
             "--address", "2 Test Row", "--description", "The roof leaks into the bedroom",
             "--outcome", "Fix the roof", "--policy", "connexus", "--manager", "mgr-1")
    first = await served.cli(*lodge)
    assert first.exit_code == 0, first.output
    reference = first.stdout.strip()
    assert reference.startswith("CMP-")
    again = await served.cli(*lodge)
    assert again.exit_code == 0 and again.stdout.strip() == reference  # one case, not two

    done = await served.cli("acknowledge", reference, "--by", "lead-1", "--handler", "hdl-1",
                            "--summary", "Roof leak", "--point", "The roof was not repaired",
                            "--outcome", "Fix the roof")
    assert done.exit_code == 0, done.output
    assert "stage1_investigating" in done.stdout
    assert "--by is ignored" in done.stderr
    [audit] = served.audit(reference, "acknowledge")
    assert audit.by == "hdl-1"  # the token's holder, not --by

    status = await served.cli("status", reference)
    assert status.exit_code == 0, status.output
    assert status.stdout.startswith(f"{reference}: stage1_investigating (stage 1)")
    assert "deadlines:" in status.stdout
    as_json = await served.cli("status", reference, "--json")
    assert CaseView.model_validate_json(as_json.stdout).handlers == {"stage1": "hdl-1"}

    listed = await served.cli("--api", served.url, "list", "--state", "stage1_investigating",
                              "--json", api_url="http://127.0.0.1:9")  # --api wins
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.stdout)
    assert row["reference"] == reference and row["handler_id"] == "hdl-1"
    text = await served.cli("list")
    assert text.exit_code == 0 and reference in text.stdout and "1 case" in text.stdout


async def test_act_drops_by_from_its_json(served: Served) -> None:
    """`act` with a `by` in its JSON is attributed to the token's holder, with a note."""
    reference = await served.api.lodge()
    assert (await served.api.act(reference, "acknowledge", acknowledge_body(),
                                 "hdl-1")).status_code == 200
    body = {"by": "lead-1", "direction": "outbound", "channel": "phone",
            "summary": "Called to book the roofer"}
    result = await served.cli("act", reference, "record_contact", "--json", json.dumps(body),
                              as_who="hdl-3")
    assert result.exit_code == 0, result.output
    assert "--by is ignored" in result.stderr
    assert [row.by for row in served.audit(reference, "record_contact")] == ["hdl-3"]


async def test_refusals_are_one_line_from_the_problem(served: Served) -> None:
    """Roles, the workflow, an unknown case and bad tokens each give one line, exit 1."""
    reference = await served.api.lodge()
    viewer = await served.cli("acknowledge", reference, "--handler", "hdl-1",
                              "--summary", "Roof leak", "--point", "Not repaired",
                              "--outcome", "Fix the roof", as_who="view-1")
    one_line_error(viewer, "your roles (viewer) may not acknowledge", "that is for: handler")
    assert served.audit(reference, "acknowledge") == []

    refused = await served.cli("escalate", reference)
    one_line_error(refused, "refused: ", "received")  # the workflow's reason, by state
    unknown = await served.cli("status", "CMP-2026-999999")
    one_line_error(unknown, "no complaint CMP-2026-999999")
    invalid = await served.cli("extend", reference, "--working-days", "-3")
    one_line_error(invalid, "#/working_days")


async def test_tokens_and_addresses_are_checked(served: Served) -> None:
    """No token, a bad token, a chosen reference and an unreachable API are each one line."""
    reference = await served.api.lodge()
    missing = await served.cli("status", reference, as_who=None)
    one_line_error(missing, "API_TOKEN is not", "complaints staff token create")
    served.api.tokens["forged"] = "cmpt_0123456789ab.not-the-secret"
    forged = await served.cli("status", reference, as_who="forged")
    one_line_error(forged, "unknown service token")
    chosen = await served.cli("lodge", "--reference", "CMP-2026-000777", "--channel", "phone",
                              "--received", dt.date.today().isoformat(),
                              "--resident", "Jo Bloggs", "--description", "Leak")
    one_line_error(chosen, "--reference cannot be chosen through the API")
    away = await served.cli("list", api_url="http://127.0.0.1:9")
    one_line_error(away, "cannot reach the API at http://127.0.0.1:9")


async def test_direct_mode_still_needs_by(served: Served) -> None:
    """Without API_URL a staff command still requires --by, as operators use it."""
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["escalate", "CMP-2026-000001"],
                                     env={"API_URL": None, "API_TOKEN": None})
    assert result.exit_code == 2
    assert "Missing option '--by'" in result.stderr


async def test_letters_read_the_same_remote_as_direct(served: Served, tmp_path: Path) -> None:
    """The letters list, one letter's text and its PDF are the same through the API as direct."""
    reference = await served.api.lodge()
    assert (await served.api.act(reference, "acknowledge", acknowledge_body(),
                                 "hdl-1")).status_code == 200
    listed = ok(await served.cli("letters", reference))
    assert listed == ok(await served.direct("letters", reference))
    assert listed.endswith("1 letter\n")
    letter_id = listed.split()[0]
    text = ok(await served.cli("letters", reference, "--show", letter_id))
    assert text == ok(await served.direct("letters", reference, "--show", letter_id))
    assert reference in text
    remote_pdf, direct_pdf = tmp_path / "remote.pdf", tmp_path / "direct.pdf"
    wrote = ok(await served.cli("letters", reference, "--show", letter_id, "--pdf",
                                str(remote_pdf)))
    ok(await served.direct("letters", reference, "--show", letter_id, "--pdf",
                           str(direct_pdf)))
    assert remote_pdf.read_bytes() == direct_pdf.read_bytes()
    assert remote_pdf.read_bytes().startswith(b"%PDF")
    assert wrote == f"{remote_pdf} ({remote_pdf.stat().st_size:,} bytes)\n"


async def test_documents_read_the_same_remote_as_direct(served: Served, tmp_path: Path) -> None:
    """Attached through the API, a document lists, lists as JSON and downloads as direct."""
    reference = await served.api.lodge()
    source = tmp_path / "Résidente email.txt"  # a non-ASCII name crosses the API intact
    source.write_bytes(b"The resident wrote again about the leak.\n")
    attach = ("attach", reference, str(source), "--kind", "email", "--direction", "inbound",
              "--received-on", dt.date.today().isoformat(), "--note", "Second email")
    first = await served.cli(*attach, "--by", "lead-1")
    assert ok(first).startswith(f"{reference}: attached ")
    assert "--by is ignored" in first.stderr
    again = ok(await served.cli(*attach))
    assert again == ok(await served.direct(*attach))
    assert "already attached as" in again and "by hdl-1" in again  # the token's holder

    for args in (("documents", reference), ("documents", reference, "--json")):
        assert ok(await served.cli(*args)) == ok(await served.direct(*args))
    [row] = json.loads(ok(await served.cli("documents", reference, "--json")))
    assert row["added_by"] == "hdl-1" and row["note"] == "Second email"

    remote_dir, direct_dir = tmp_path / "remote", tmp_path / "direct"
    remote_dir.mkdir()
    direct_dir.mkdir()
    wrote = ok(await served.cli("document", reference, row["document_id"], "--out",
                                str(remote_dir)))
    direct = ok(await served.direct("document", reference, row["document_id"], "--out",
                                    str(direct_dir)))
    assert wrote.replace(str(remote_dir), "OUT") == direct.replace(str(direct_dir), "OUT")
    assert (remote_dir / source.name).read_bytes() == source.read_bytes()
    assert (remote_dir / source.name).stat().st_mode & 0o777 == 0o600
    refused = await served.cli("document", reference, row["document_id"], "--out",
                               str(remote_dir))
    one_line_error(refused, "exists already")  # never over an existing file


async def test_triage_reads_the_same_remote_as_direct(served: Served) -> None:
    """A triage through the API is the token holder's, and triage-show matches direct."""
    reference = await served.api.lodge()
    ok(await served.direct("triage", reference, "--complexity", "low", "--vulnerability",
                           "none", "--risk", "low", "--by", "mgr-1"))
    done = ok(await served.cli("triage", reference, "--complexity", "high",
                               "--vulnerability", "some", "--risk", "medium",
                               "--note", "Asthma in the household"))
    assert done.startswith(f"{reference}: triage recorded: complexity high, vulnerability "
                           "some, risk medium (by hdl-1, ")
    shown = ok(await served.cli("triage-show", reference))
    assert shown == ok(await served.direct("triage-show", reference))
    current, note, earlier = shown.splitlines()
    assert current.startswith(f"{reference}: current: complexity high") and "hdl-1" in current
    assert note == "    note: Asthma in the household"
    assert earlier.startswith("  earlier: complexity low, vulnerability none, risk low "
                              "(by mgr-1, ")


async def test_a_viewer_may_not_attach_or_triage(served: Served, tmp_path: Path) -> None:
    """A viewer's attach and triage are refused with the API's one-line reason, exit 1."""
    reference = await served.api.lodge()
    source = tmp_path / "photo.txt"
    source.write_text("A description of the photo")
    attach = await served.cli("attach", reference, str(source), "--kind", "photo",
                              "--direction", "inbound", as_who="view-1")
    one_line_error(attach, "your roles (viewer) may not attach documents")
    triage = await served.cli("triage", reference, "--complexity", "low", "--vulnerability",
                              "none", "--risk", "low", as_who="view-1")
    one_line_error(triage, "your roles (viewer) may not triage cases", "that is for: handler")
    with served.api.context.session() as session:
        assert session.exec(select(DocumentRow).where(DocumentRow.reference == reference)
                            ).all() == []
        assert session.exec(select(TriageRow).where(TriageRow.reference == reference)
                            ).all() == []


def test_operator_commands_refuse_remote_mode() -> None:
    """The restriction register and the webhook commands refuse remote mode in one line."""
    env = {"API_URL": "http://127.0.0.1:9", "API_TOKEN": "cmpt_0123456789ab.secret",
           "COMPLAINTS_DEBUG": None}
    for args in (["restriction", "list"],
                 ["restriction", "review", "CMP-2026-000001", "1", "--outcome", "lift",
                  "--note", "Behaviour improved", "--by", "mgr-1"],
                 ["webhooks", "list"], ["webhooks", "deliver"]):
        result = CliRunner().invoke(cli, args, env=env)
        one_line_error(result, f"`complaints {' '.join(args[:2])}` needs direct access",
                       "unset API_URL")
