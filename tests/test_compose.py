"""Structure of the production-shaped stack: docker-compose.yml, Dockerfile, .dockerignore.

No Docker engine is needed: the files are parsed and checked against what the stack relies on,
including its hardening: Temporal's production images at the versions the tests run, mTLS
on Temporal's frontend, OIDC sign-in on its UI, and no secret with a default.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

SERVICES = {"postgresql", "temporal-schema", "temporal", "temporal-admin-tools", "temporal-ui",
            "worker", "web"}
#: The Temporal CLI the tests run (its dev server is the Temporal the tests run against).
TEMPORAL_CLI = Path(sys.executable).parent / "temporal"
#: The services that talk to Temporal's frontend, each with a client certificate of its own.
TEMPORAL_CLIENTS = ("temporal-admin-tools", "temporal-ui", "worker", "web")

#: The custom search attributes the workflow upserts, with their Temporal types.
EXPECTED_SEARCH_ATTRIBUTES = {
    "ComplaintState": "Keyword",
    "ComplaintStage": "Int",
    "NextDeadline": "Datetime",
    "Landlord": "Keyword",
    "HandlerId": "Keyword",
    "Overdue": "Bool",
}

DEPENDS_ON_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}

#: ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err}, ${VAR:+alt}, ${VAR+alt}.
INTERPOLATION = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?:(?::?[-?+])[^${}]*)?\}")
#: The same, in parts: the variable, the operator and what follows it.
INTERPOLATION_PARTS = re.compile(
    r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<rest>[^${}]*))?\}")
#: Variable names that hold a secret: passwords, keys (PAYLOAD_KEYS too), tokens.
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|PWD|SECRET|TOKEN|KEY", re.I)
#: The secrets without which compose must refuse to start (${X:?...}).
REQUIRED_SECRETS = {"POSTGRES_PASSWORD", "SESSION_SECRET", "OIDC_CLIENT_SECRET",
                    "TEMPORAL_UI_OIDC_CLIENT_SECRET", "PAYLOAD_KEYS"}
#: Optional credentials of optional features: passed through bare (${X}), no default.
OPTIONAL_SECRETS = {"SMTP_PASSWORD", "INTEGRATION_WEBHOOK_SECRET"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """Parse docker-compose.yml."""
    data = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(data, dict), "docker-compose.yml is not a mapping"
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    """Return the services of docker-compose.yml, by name."""
    return compose["services"]


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    """Parse the Dockerfile into (INSTRUCTION, arguments) pairs, continuations joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # Comment lines inside a continued instruction are dropped by Docker.
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = (pending + line).strip()
        pending = ""
        keyword, _, args = full.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    return instructions


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {key: "" if value is None else str(value) for key, value in env.items()}


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on", {})
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def _command_text(service: dict[str, Any]) -> str:
    command = service.get("command", "")
    return "\n".join(command) if isinstance(command, list) else str(command)


def _host_ports(service: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(protocol, host port, container port) for each published port of a service."""
    published = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            if port.get("published") is not None:
                published.append((port.get("protocol", "tcp"), int(port["published"]),
                                  int(port["target"])))
            continue
        spec, _, protocol = str(port).partition("/")
        parts = spec.split(":")
        if len(parts) >= 2:
            published.append((protocol or "tcp", int(parts[-2]), int(parts[-1])))
    return published


def _exec_form(args: str) -> list[str]:
    """CMD/ENTRYPOINT/COPY arguments as a list (JSON form or shell words)."""
    if args.startswith("["):
        return list(json.loads(args))
    return shlex.split(args)


def _strings(node: Any) -> list[str]:
    """Every string (keys and values) in a parsed YAML document; comments are not values."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (*_strings(k), *_strings(v))]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return []


def _copy_sources(dockerfile: list[tuple[str, str]]) -> list[str]:
    sources = []
    for keyword, args in dockerfile:
        if keyword not in ("COPY", "ADD"):
            continue
        words = [w for w in _exec_form(args) if not w.startswith("--")]
        if any(a.startswith("--from") for a in args.split()):
            continue  # From another stage, not from the build context.
        sources.extend(words[:-1])
    return sources


def test_the_services_exist(services: dict[str, Any]) -> None:
    """The stack has PostgreSQL, the schema job, Temporal, the admin-tools job, UI, worker, web."""
    missing = SERVICES - set(services)
    assert not missing, f"services missing from docker-compose.yml: {sorted(missing)}"


def test_compose_file_uses_the_compose_spec(compose: dict[str, Any]) -> None:
    """The file follows the Compose Specification, which has no top-level version key."""
    assert "version" not in compose, "drop the obsolete top-level 'version:' key"


def test_every_image_is_pinned(services: dict[str, Any]) -> None:
    """Every image names a tag other than latest, and a service without an image is built."""
    for name, service in services.items():
        image = service.get("image")
        if image is None:
            assert "build" in service, f"{name} has neither image nor build"
            continue
        reference = image.split("@", 1)[0]
        repository, sep, tag = reference.rpartition(":")
        assert sep and "/" not in tag, f"{name}: image {image!r} has no tag"
        assert tag and tag != "latest", f"{name}: image {image!r} is not pinned"
        assert "${" not in tag, f"{name}: image tag {tag!r} depends on the environment"


def test_temporal_images_share_a_server_version(services: dict[str, Any]) -> None:
    """Both admin-tools jobs use the image built for the server's own release."""
    server = services["temporal"]["image"].rpartition(":")[2]
    assert services["temporal"]["image"].startswith("temporalio/server:")
    for job in ("temporal-schema", "temporal-admin-tools"):
        repository, _, tools = services[job]["image"].rpartition(":")
        assert repository == "temporalio/admin-tools", job
        # Since 1.30 admin-tools is tagged with the server's version alone.
        assert tools == server, (job, server, tools)


def _tested_versions() -> dict[str, str]:
    """The Temporal versions the tests run: ``temporal --version``'s Server and UI."""
    out = subprocess.run([str(TEMPORAL_CLI), "--version"], capture_output=True, text=True,
                         check=True, timeout=30).stdout
    found = dict(re.findall(r"\b(Server|UI) (\d+\.\d+\.\d+)\b", out))
    assert set(found) == {"Server", "UI"}, f"unexpected `temporal --version`: {out!r}"
    return found


def test_temporal_images_are_the_versions_the_tests_run(services: dict[str, Any]) -> None:
    """The server and UI images are exactly the releases `temporal --version` reports."""
    tested = _tested_versions()
    assert services["temporal"]["image"] == f"temporalio/server:{tested['Server']}"
    assert services["temporal-ui"]["image"] == f"temporalio/ui:{tested['UI']}"


def test_no_service_uses_auto_setup(services: dict[str, Any]) -> None:
    """auto-setup is Temporal's development image: no service runs it."""
    for name, service in services.items():
        assert "auto-setup" not in str(service.get("image", "")), name


def test_depends_on_references_existing_services(services: dict[str, Any]) -> None:
    """Every depends_on names a service of this file with a valid condition."""
    for name, service in services.items():
        for dependency, condition in _depends_on(service).items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            assert dependency != name, f"{name} depends on itself"
            assert condition in DEPENDS_ON_CONDITIONS, f"{name}: bad condition {condition}"


def test_health_conditions_have_healthchecks(services: dict[str, Any]) -> None:
    """A service waited on as service_healthy defines a healthcheck to become healthy."""
    for name, service in services.items():
        for dependency, condition in _depends_on(service).items():
            if condition == "service_healthy":
                assert services[dependency].get("healthcheck", {}).get("test"), (
                    f"{name} waits for {dependency} to be healthy, but it has no healthcheck")


def test_healthchecks_use_the_expected_probes(services: dict[str, Any]) -> None:
    """PostgreSQL is probed with pg_isready, Temporal's frontend port with nc (no CLI there)."""
    postgres = " ".join(services["postgresql"]["healthcheck"]["test"])
    temporal = services["temporal"]["healthcheck"]["test"]
    assert "pg_isready" in postgres
    assert temporal == ["CMD", "nc", "-z", "127.0.0.1", "7233"]
    # The port alone says little: the job the worker waits for checks SERVING over mTLS.
    assert re.search(r"until temporal operator cluster health .*\| grep -q SERVING",
                     _command_text(services["temporal-admin-tools"]))


def test_worker_waits_for_its_dependencies(services: dict[str, Any]) -> None:
    """The worker starts only once Temporal and PostgreSQL are healthy and attributes exist."""
    assert _depends_on(services["worker"]) == {
        "temporal": "service_healthy",
        "temporal-admin-tools": "service_completed_successfully",
        "postgresql": "service_healthy",
    }


def test_temporal_runs_on_postgresql(services: dict[str, Any]) -> None:
    """Temporal's server image points at the postgresql service with the postgres12 driver."""
    env = _environment(services["temporal"])
    assert env.get("DB") == "postgres12"
    assert env.get("POSTGRES_SEEDS") == "postgresql"
    assert env.get("DB_PORT") == "5432"
    assert env.get("POSTGRES_USER") and env.get("POSTGRES_PWD")
    assert (env.get("DBNAME"), env.get("VISIBILITY_DBNAME")) == ("temporal", "temporal_visibility")
    assert _depends_on(services["temporal"]).get("postgresql") == "service_healthy"


def test_admin_tools_registers_the_search_attributes(services: dict[str, Any]) -> None:
    """The admin-tools job creates exactly the six attributes, with their types, in default."""
    command = _command_text(services["temporal-admin-tools"])
    registered: dict[str, str] = {}
    for line in command.splitlines():
        if "search-attribute create" not in line:
            continue
        words = shlex.split(line.split("||", 1)[0])
        options = dict(zip(words, words[1:], strict=False))
        assert "$$tls" in words, f"not over mTLS: {line}"
        assert options.get("--namespace") == "default", line
        assert options.get("--address") == "temporal:7233", line
        assert options["--name"] not in registered, f"{options['--name']} registered twice"
        registered[options["--name"]] = options["--type"]
        assert "||" in line, f"an existing attribute would fail a restart: {line}"
    assert registered == EXPECTED_SEARCH_ATTRIBUTES


def test_admin_tools_is_a_one_shot_job(services: dict[str, Any]) -> None:
    """The job runs its script instead of the image's idle entrypoint, and is not restarted."""
    tools = services["temporal-admin-tools"]
    assert tools.get("restart") == "no"
    assert tools.get("entrypoint"), "admin-tools' own entrypoint only sleeps forever"
    assert _depends_on(tools).get("temporal") == "service_healthy"
    assert "set -e" in _command_text(tools), "a failed registration must fail the job"


def test_worker_temporal_address_points_at_temporal(services: dict[str, Any]) -> None:
    """The worker's TEMPORAL_ADDRESS is the temporal service's host and gRPC port."""
    host, _, port = _environment(services["worker"])["TEMPORAL_ADDRESS"].partition(":")
    assert host == "temporal"
    assert host in services
    container_ports = {target for _, _, target in _host_ports(services["temporal"])}
    assert int(port) in container_ports, f"temporal does not serve port {port}"
    assert _environment(services["temporal-ui"])["TEMPORAL_ADDRESS"] == f"{host}:{port}"


def test_worker_uses_the_complaints_database(services: dict[str, Any]) -> None:
    """The worker's DATABASE_URL is psycopg on the postgresql service, database complaints."""
    url = _environment(services["worker"])["DATABASE_URL"]
    match = re.fullmatch(r"postgresql\+psycopg://[^@/]+@(?P<host>[^:/]+):(?P<port>\d+)/(?P<db>\w+)",
                         url)
    assert match, f"unexpected DATABASE_URL {url!r}"
    assert match["host"] == "postgresql" and match["host"] in services
    assert match["port"] == "5432"
    assert match["db"] == "complaints"


def test_worker_environment(services: dict[str, Any]) -> None:
    """The worker writes to /data, logs JSON and passes the SMTP settings through."""
    env = _environment(services["worker"])
    assert env.get("DATA_DIR") == "/data"
    assert env.get("OUTBOX_DIR", "").startswith(env.get("DATA_DIR", "?") + "/")
    assert env.get("LOG_JSON") == "true"
    for name in ("SMTP_HOST", "SMTP_PORT", "SMTP_USERNAME", "SMTP_PASSWORD"):
        assert env.get(name, "").startswith("${" + name), f"{name} is not passed through"
    mounts = [str(v).split(":")[1] for v in services["worker"].get("volumes", [])
              if not isinstance(v, dict)]
    assert "/data" in mounts, "the worker's /data is not on a volume"
    assert services["worker"].get("restart") == "unless-stopped"
    assert services["worker"].get("build"), "the worker image is built from this repository"


def test_complaints_database_is_created_on_first_start(services: dict[str, Any]) -> None:
    """deploy/postgres-init.sql is mounted into the init folder and creates complaints."""
    volumes = [str(v) for v in services["postgresql"].get("volumes", [])]
    init = [v for v in volumes if "/docker-entrypoint-initdb.d/" in v]
    assert init, "nothing is mounted into /docker-entrypoint-initdb.d"
    source = init[0].split(":")[0]
    path = (ROOT / source).resolve()
    assert path == ROOT / "deploy" / "postgres-init.sql"
    assert re.search(r"CREATE DATABASE complaints\b", path.read_text(encoding="utf-8"))


def test_interpolations_are_well_formed(compose: dict[str, Any]) -> None:
    """Every ${...} in docker-compose.yml is a valid variable reference; $$ escapes a dollar."""
    found = 0
    for text in _strings(compose):
        found += len(INTERPOLATION.findall(text.replace("$$", "")))
        rest = INTERPOLATION.sub("", text.replace("$$", ""))
        assert "$" not in rest, f"malformed interpolation in docker-compose.yml: {text!r}"
    assert found, "no ${...} found: the walk over docker-compose.yml saw nothing"


def test_named_volumes_are_declared(compose: dict[str, Any],
                                    services: dict[str, Any]) -> None:
    """Every named volume a service mounts is declared under the top-level volumes key."""
    declared = set(compose.get("volumes") or {})
    used = set()
    for name, service in services.items():
        for volume in service.get("volumes", []):
            if isinstance(volume, dict):
                if volume.get("type") == "volume" and volume.get("source"):
                    used.add(volume["source"])
                continue
            parts = str(volume).split(":")
            if len(parts) >= 2 and not parts[0].startswith(("/", ".", "~", "$")):
                used.add(parts[0])
            assert len(parts) >= 2, f"{name}: anonymous volume {volume!r} is lost on recreate"
    assert used, "no named volumes: the data would not survive a recreate"
    assert used <= declared, f"undeclared volumes: {sorted(used - declared)}"
    assert declared <= used, f"declared but unused volumes: {sorted(declared - used)}"


def test_published_ports_do_not_clash(services: dict[str, Any]) -> None:
    """No two services publish the same host port."""
    seen: dict[tuple[str, int], str] = {}
    for name, service in services.items():
        for protocol, host, _ in _host_ports(service):
            assert (protocol, host) not in seen, (
                f"{name} and {seen[(protocol, host)]} both publish {host}/{protocol}")
            seen[(protocol, host)] = name
    assert seen.get(("tcp", 7233)) == "temporal"
    assert seen.get(("tcp", 8080)) == "temporal-ui"


def test_dockerfile_runs_migrations_then_the_worker(dockerfile: list[tuple[str, str]]) -> None:
    """The image's default command upgrades the database and then runs python worker.py."""
    commands = [args for keyword, args in dockerfile if keyword == "CMD"]
    assert commands, "the Dockerfile has no CMD"
    command = " ".join(_exec_form(commands[-1]))
    assert "python worker.py" in command
    assert "complaints db upgrade" in command
    assert command.index("complaints db upgrade") < command.index("python worker.py")
    assert "&&" in command, "the worker must not start when the migration fails"


def test_dockerfile_does_not_run_as_root(dockerfile: list[tuple[str, str]]) -> None:
    """The last USER instruction names an unprivileged user."""
    users = [args for keyword, args in dockerfile if keyword == "USER"]
    assert users, "the Dockerfile has no USER line, so the worker would run as root"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), f"the image runs as {users[-1]}"


def test_dockerfile_base_and_install(dockerfile: list[tuple[str, str]]) -> None:
    """The image starts from python:3.11-slim and installs the project without dev extras."""
    bases = [args.split()[0] for keyword, args in dockerfile if keyword == "FROM"]
    assert bases and bases[0].startswith("python:3.11-slim")
    installs = [args for keyword, args in dockerfile
                if keyword == "RUN" and "pip install" in args]
    assert any(re.search(r"pip install --no-cache-dir \.(\s|$)", a) for a in installs), installs
    assert not any("[dev]" in a for a in installs), "dev extras belong in CI, not the image"


def _first_party_packages() -> list[str]:
    """The packages ``pip install .`` installs (pyproject's ``include``), as ``name/``."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["packages"]["find"]["include"]
    return sorted(f"{p.rstrip('*')}/" for p in patterns)


def test_every_installed_package_is_a_folder() -> None:
    """Each package pyproject installs exists, so the list below cannot silently shrink."""
    packages = _first_party_packages()
    assert "domain/" in packages and "workflows/" in packages
    assert all((ROOT / p / "__init__.py").is_file() for p in packages), packages


@pytest.mark.parametrize("source", [*_first_party_packages(), "pyproject.toml", "README.md"])
def test_dockerfile_copies_existing_sources(dockerfile: list[tuple[str, str]],
                                            source: str) -> None:
    """The Dockerfile copies this path into the image, and it exists in the repository."""
    assert source in _copy_sources(dockerfile)
    assert (ROOT / source).exists(), f"{source} is copied but missing"


@pytest.mark.parametrize("source", ["worker.py", "alembic.ini"])
def test_dockerfile_copies_worker_and_alembic(dockerfile: list[tuple[str, str]],
                                              source: str) -> None:
    """The worker entry point and the Alembic configuration are copied and exist."""
    assert source in _copy_sources(dockerfile)
    assert (ROOT / source).is_file(), f"{source} is copied but missing"


def test_every_copy_source_exists(dockerfile: list[tuple[str, str]]) -> None:
    """No COPY in the Dockerfile names a path missing from the build context (bar the two above)."""
    pending = {"worker.py", "alembic.ini"}  # Checked on their own above.
    missing = [s for s in _copy_sources(dockerfile)
               if s not in pending and not (ROOT / s).exists()]
    assert not missing, f"COPY sources missing from the repository: {missing}"


def test_dockerignore_keeps_local_state_out() -> None:
    """The build context leaves out the virtualenv, local data, caches, secrets and .git."""
    patterns = {line.strip().rstrip("/") for line in
                (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
                if line.strip() and not line.startswith("#")}
    for required in (".venv", ".data", ".git", ".pytest_cache", ".mypy_cache",
                     ".ruff_cache", ".hypothesis", ".env"):
        assert required in patterns, f".dockerignore does not exclude {required}"
    copied = {"complaints", "workflows", "activities", "models", "pyproject.toml",
              "README.md", "worker.py", "alembic.ini"}
    assert not copied & patterns, f".dockerignore excludes copied sources: {copied & patterns}"


# --- the web app -------------------------------------------------------------------------


def test_web_serves_the_app_from_the_worker_image(services: dict[str, Any]) -> None:
    """`web` runs `complaints serve --host 0.0.0.0` from the worker's image, port 8000."""
    web = services["web"]
    assert web.get("image") == services["worker"].get("image") and web.get("build")
    command = web.get("command")
    words = command if isinstance(command, list) else shlex.split(str(command))
    assert words[:2] == ["complaints", "serve"], words
    assert words[words.index("--host") + 1] == "0.0.0.0"
    assert _environment(web).get("WEB_PORT") == "8000"
    assert _host_ports(web) == [("tcp", 8000, 8000)]
    published = [str(p) for p in web.get("ports", [])]
    assert all(p.startswith("127.0.0.1:") for p in published), (
        "plain HTTP must stay on loopback: staff reach the app through the TLS proxy")
    assert "complaints-data:/data" in [str(v) for v in web.get("volumes", [])]
    assert web.get("restart") == "unless-stopped"


def test_web_waits_for_what_the_worker_waits_for(services: dict[str, Any]) -> None:
    """`web` starts once PostgreSQL and Temporal are healthy and the attributes exist."""
    assert _depends_on(services["web"]) == _depends_on(services["worker"])
    env = _environment(services["web"])
    worker = _environment(services["worker"])
    for name in ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_TASK_QUEUE",
                 "TEMPORAL_TLS_CA", "TEMPORAL_TLS_SERVER_NAME", "TEMPORAL_TLS_CERT",
                 "TEMPORAL_TLS_KEY", "PAYLOAD_KEYS", "DATABASE_URL", "DATA_DIR"):
        assert env.get(name) == worker.get(name), f"web and worker disagree on {name}"


def test_web_healthcheck_probes_the_api_health(services: dict[str, Any]) -> None:
    """The healthcheck fetches /api/v1/health on the port the app listens on."""
    check = services["web"]["healthcheck"]
    test = check["test"]
    assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL")
    probe = " ".join(test[1:])
    assert "http://127.0.0.1:8000/api/v1/health" in probe
    assert "curl" not in probe and "wget" not in probe, "python:3.11-slim has neither"
    assert "urlopen" in probe
    for key in ("interval", "timeout", "retries"):
        assert check.get(key), f"the web healthcheck has no {key}"


def test_web_settings_come_from_the_environment(services: dict[str, Any]) -> None:
    """Sign-in, session, public URL and proxy settings pass through; dev sign-in is off."""
    env = _environment(services["web"])
    for name in ("OIDC_ISSUER", "OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET", "OIDC_AUDIENCE",
                 "OIDC_SUBJECT_CLAIM", "SESSION_SECRET", "PUBLIC_URL", "PERMISSIONS_FILE",
                 "FORWARDED_ALLOW_IPS"):
        assert env.get(name, "").startswith("${" + name), f"{name} is not passed through"
    for required in ("SESSION_SECRET", "PUBLIC_URL"):
        assert env[required].startswith("${" + required + ":?"), (
            f"{required} must be required, so that compose refuses to start without it")
    assert env.get("DEV_SIGN_IN") == "false"


def _secret_interpolations(compose: dict[str, Any]) -> list[re.Match[str]]:
    found = []
    for text in _strings(compose):
        found += [m for m in INTERPOLATION_PARTS.finditer(text.replace("$$", ""))
                  if SECRET_NAME.search(m["name"])]
    return found


def test_every_secret_is_required(compose: dict[str, Any]) -> None:
    """Every secret is ${X:?...} (compose refuses to start without it) wherever it is used."""
    found = _secret_interpolations(compose)
    assert REQUIRED_SECRETS | OPTIONAL_SECRETS <= {m["name"] for m in found}
    for match in found:
        if match["name"] in OPTIONAL_SECRETS:
            # An optional feature's credential: no default either, unset it is "".
            assert match["op"] is None, f"{match[0]}: an optional secret takes no default"
            continue
        assert match["op"] == ":?" and match["rest"].strip(), (
            f"{match[0]}: a secret must be required, ${{{match['name']}:?how to make one}}")


def test_no_secret_has_a_default(compose: dict[str, Any]) -> None:
    """No *PASSWORD*, *SECRET* or *KEY* variable has a :- or - default, not even an empty one."""
    found = _secret_interpolations(compose)
    assert found, "no secret found: the walk over docker-compose.yml saw nothing"
    defaults = [m[0] for m in found if (m["op"] or "") in (":-", "-")]
    assert not defaults, f"secrets with a default: {defaults}"


def test_postgres_has_no_default_credentials(services: dict[str, Any]) -> None:
    """The PostgreSQL user and password are both required (they once defaulted to temporal)."""
    for name, service in services.items():
        for key, value in _environment(service).items():
            for match in INTERPOLATION_PARTS.finditer(value.replace("$$", "")):
                if match["name"] in ("POSTGRES_USER", "POSTGRES_PASSWORD"):
                    assert match["op"] == ":?", f"{name}: {key} = {value}"
    assert _environment(services["postgresql"])["POSTGRES_USER"].startswith("${POSTGRES_USER:?")


def _read_only_mounts(service: dict[str, Any]) -> list[str]:
    """The container paths of a service's read-only bind mounts."""
    targets = []
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "bind" and volume.get("read_only"):
                targets.append(volume["target"])
            continue
        parts = str(volume).split(":")
        if len(parts) == 3 and parts[2] == "ro" and parts[0].startswith("."):
            targets.append(parts[1])
    return targets


def test_no_secret_is_written_in_the_file(services: dict[str, Any]) -> None:
    """A secret setting is interpolated, or a path into a read-only mount; URLs hold none."""
    for name, service in services.items():
        mounts = _read_only_mounts(service)
        for key, value in _environment(service).items():
            if SECRET_NAME.search(key):
                in_mount = any(value.startswith(m.rstrip("/") + "/") for m in mounts)
                switch = value in ("true", "false")  # e.g. TEMPORAL_CODEC_PASS_ACCESS_TOKEN
                assert value == "" or INTERPOLATION.fullmatch(value) or in_mount or switch, (
                    f"{name}: {key} is written in docker-compose.yml")
            # With the interpolations taken out, whatever is left as a password is literal.
            literal = INTERPOLATION.sub("", value)
            assert not re.search(r"://[^@/:]*:[^@/]+@", literal), (
                f"{name}: {key} has a literal password")


# --- Temporal: schema job, mTLS, UI sign-in ---------------------------------------------


def test_schema_job_installs_both_schemas(services: dict[str, Any]) -> None:
    """temporal-schema creates and migrates temporal and temporal_visibility, then exits."""
    job = services["temporal-schema"]
    assert job.get("restart") == "no" and job.get("entrypoint")
    assert _depends_on(job) == {"postgresql": "service_healthy"}
    script = _command_text(job)
    assert "set -eu" in script, "a failed step must fail the job, or the server starts anyway"
    assert "--plugin postgres12 --ep postgresql -p 5432" in script
    steps = re.findall(r"^\s*sql --db (\w+) (create|setup-schema|update-schema)(.*)$", script,
                       re.M)
    assert [(db, step) for db, step, _ in steps] == [
        (db, step) for db in ("temporal", "temporal_visibility")
        for step in ("create", "setup-schema", "update-schema")]
    updates = {db: rest for db, step, rest in steps if step == "update-schema"}
    assert "/temporal/versioned" in updates["temporal"]
    assert "/visibility/versioned" in updates["temporal_visibility"]
    # The password reaches temporal-sql-tool through its environment, not its arguments.
    assert _environment(job)["SQL_PASSWORD"].startswith("${POSTGRES_PASSWORD:?")
    assert "--pw" not in script and "POSTGRES_PASSWORD" not in script


def test_server_waits_for_the_schema_job(services: dict[str, Any]) -> None:
    """The server starts only after the schema job has exited 0."""
    assert _depends_on(services["temporal"]).get("temporal-schema") == (
        "service_completed_successfully")


def _tls_mount(service: dict[str, Any]) -> dict[str, Any]:
    """The service's one bind mount of a deploy/tls folder."""
    mounts = [v for v in service.get("volumes", []) if isinstance(v, dict)
              and str(v.get("source", "")).startswith("./deploy/tls/")]
    assert len(mounts) == 1, mounts
    return mounts[0]


def test_tls_folders_are_mounted_read_only_and_must_exist(services: dict[str, Any]) -> None:
    """Each TLS party gets its own deploy/tls folder, read-only; a missing one stops compose."""
    sources = {}
    for name in ("temporal", *TEMPORAL_CLIENTS):
        mount = _tls_mount(services[name])
        assert mount["type"] == "bind" and mount["read_only"] is True, name
        # Docker would otherwise create an empty folder and the service would fail later.
        assert mount["bind"]["create_host_path"] is False, name
        assert mount["source"] != "./deploy/tls/ca", f"{name} must not see the CA's key"
        sources[name] = mount["source"]
    # The worker and the web app share a client certificate; everyone else has their own.
    assert sources["worker"] == sources["web"]
    distinct = {sources[n] for n in ("temporal", "temporal-admin-tools", "temporal-ui", "web")}
    assert len(distinct) == 4, sources


def _under_tls_mount(service: dict[str, Any], path: str) -> bool:
    return path.startswith(_tls_mount(service)["target"].rstrip("/") + "/")


def test_frontend_requires_client_certificates(services: dict[str, Any]) -> None:
    """Temporal's frontend has a certificate, trusts the CA, and requires client certificates."""
    server = services["temporal"]
    env = _environment(server)
    assert env.get("TEMPORAL_TLS_REQUIRE_CLIENT_AUTH") == "true"
    for name in ("TEMPORAL_TLS_FRONTEND_CERT", "TEMPORAL_TLS_FRONTEND_KEY",
                 "TEMPORAL_TLS_CLIENT1_CA_CERT", "TEMPORAL_TLS_CLIENT2_CA_CERT",
                 "TEMPORAL_TLS_SERVER_CERT", "TEMPORAL_TLS_SERVER_KEY",
                 "TEMPORAL_TLS_SERVER_CA_CERT"):
        assert _under_tls_mount(server, env.get(name, "")), f"{name} is not a mounted file"
    # The server's own services verify each other under the name its certificate is for.
    assert env["TEMPORAL_TLS_FRONTEND_SERVER_NAME"] == "temporal"
    assert env["TEMPORAL_TLS_INTERNODE_SERVER_NAME"] == "temporal"
    assert env.get("BIND_ON_IP") == "0.0.0.0"


def test_every_client_presents_a_certificate(services: dict[str, Any]) -> None:
    """The UI, worker and web app check the server against the CA and name, with a cert."""
    expected = {"temporal-ui": ("TEMPORAL_TLS_CA", "TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY"),
                "worker": ("TEMPORAL_TLS_CA", "TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY"),
                "web": ("TEMPORAL_TLS_CA", "TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY")}
    for name, files in expected.items():
        env = _environment(services[name])
        for setting in files:
            assert _under_tls_mount(services[name], env.get(setting, "")), (name, setting)
        assert env.get("TEMPORAL_TLS_SERVER_NAME") == "temporal", name
    assert _environment(services["temporal-ui"]).get(
        "TEMPORAL_TLS_ENABLE_HOST_VERIFICATION") == "true"


def test_admin_tools_talks_mtls_on_every_call(services: dict[str, Any]) -> None:
    """Each `temporal` call of the admin job passes the CA, its certificate, key and the name."""
    job = services["temporal-admin-tools"]
    script = _command_text(job)
    [definition] = re.findall(r'^\s*tls="([^"]+)"$', script, re.M)
    options = dict(zip(definition.split()[::2], definition.split()[1::2], strict=True))
    assert set(options) == {"--tls-ca-path", "--tls-cert-path", "--tls-key-path",
                            "--tls-server-name"}
    assert options["--tls-server-name"] == "temporal"
    for flag in ("--tls-ca-path", "--tls-cert-path", "--tls-key-path"):
        assert _under_tls_mount(job, options[flag]), flag
    calls = re.findall(r"\btemporal operator [^|\n]*", script)
    assert len(calls) >= 10, calls
    for call in calls:
        assert "$$tls" in call.split(), f"a call without mTLS: {call}"


def test_admin_tools_creates_namespace_default(services: dict[str, Any]) -> None:
    """The server image makes no namespace: the job creates default, accepting one that exists."""
    script = _command_text(services["temporal-admin-tools"])
    [line] = [x for x in script.splitlines() if "namespace create" in x]
    create, _, fallback = line.partition("||")
    words = shlex.split(create)
    assert words[words.index("--namespace") + 1] == "default"
    assert "--retention" in words
    assert "namespace describe --namespace default" in fallback
    assert script.index("namespace create") < script.index("search-attribute create")


def test_dynamic_config_is_mounted(services: dict[str, Any]) -> None:
    """The server's dynamic config file exists in the repository and is mounted where it reads."""
    env = _environment(services["temporal"])
    mounts = [str(v) for v in services["temporal"]["volumes"] if not isinstance(v, dict)]
    [mount] = [m for m in mounts if m.split(":")[1] == env["DYNAMIC_CONFIG_FILE_PATH"]]
    source = ROOT / mount.split(":")[0]
    assert source.is_file() and yaml.safe_load(source.read_text(encoding="utf-8"))


def test_ui_requires_oidc_sign_in(services: dict[str, Any]) -> None:
    """The UI signs people in with OIDC; its client id and secret and its URL are required."""
    env = _environment(services["temporal-ui"])
    assert env.get("TEMPORAL_AUTH_ENABLED") == "true"
    assert env.get("TEMPORAL_AUTH_TYPE") == "oidc"
    for name in ("TEMPORAL_AUTH_PROVIDER_URL", "TEMPORAL_AUTH_CLIENT_ID",
                 "TEMPORAL_AUTH_CLIENT_SECRET", "TEMPORAL_AUTH_CALLBACK_URL",
                 "TEMPORAL_CORS_ORIGINS"):
        assert re.match(r"\$\{[A-Z_]+:\?[^}]+\}", env.get(name, "")), f"{name} is not required"
    # The UI and the web app sign in at the same provider: the codec checks its tokens.
    assert env["TEMPORAL_AUTH_PROVIDER_URL"].startswith("${OIDC_ISSUER:?")
    assert _environment(services["web"])["OIDC_ISSUER"].startswith("${OIDC_ISSUER:?")
    assert re.fullmatch(r"\$\{TEMPORAL_UI_URL:\?[^}]+\}/auth/sso/callback",
                        env["TEMPORAL_AUTH_CALLBACK_URL"])
    assert env["TEMPORAL_AUTH_SCOPES"].startswith("${TEMPORAL_UI_OIDC_SCOPES")
    assert "openid" in env["TEMPORAL_AUTH_SCOPES"]
    assert all(p.startswith("127.0.0.1:") for p in map(str, services["temporal-ui"]["ports"]))
    # Nobody terminates or cancels a case from the UI: cases move through validated actions.
    assert env.get("TEMPORAL_DISABLE_WRITE_ACTIONS") == "true"


def test_ui_decodes_through_the_web_apps_codec(services: dict[str, Any]) -> None:
    """The UI calls PUBLIC_URL/codec with the person's token; the web app allows its origin."""
    ui = _environment(services["temporal-ui"])
    web = _environment(services["web"])
    assert re.fullmatch(r"\$\{PUBLIC_URL:\?[^}]+\}/codec", ui["TEMPORAL_CODEC_ENDPOINT"])
    assert web["PUBLIC_URL"].startswith("${PUBLIC_URL:?")
    assert ui.get("TEMPORAL_CODEC_PASS_ACCESS_TOKEN") == "true"
    assert web["CODEC_CORS_ORIGINS"].startswith("${TEMPORAL_UI_URL:?")
    assert ui["TEMPORAL_CORS_ORIGINS"].startswith("${TEMPORAL_UI_URL:?")


def test_worker_and_web_require_the_payload_keys(services: dict[str, Any]) -> None:
    """PAYLOAD_KEYS is required in both, so neither falls back to a key file of its own."""
    for name in ("worker", "web"):
        assert _environment(services[name])["PAYLOAD_KEYS"].startswith("${PAYLOAD_KEYS:?"), name


def test_smtp_starttls_is_on_by_default(services: dict[str, Any]) -> None:
    """Letters go to the mail server over STARTTLS unless SMTP_STARTTLS says otherwise."""
    value = _environment(services["worker"])["SMTP_STARTTLS"]
    match = INTERPOLATION_PARTS.fullmatch(value)
    assert match and match["name"] == "SMTP_STARTTLS"
    assert (match["op"], match["rest"]) == (":-", "true")


@pytest.mark.parametrize("ignore_file", [".gitignore", ".dockerignore"])
def test_tls_folder_is_never_committed_or_copied(ignore_file: str) -> None:
    """deploy/tls (keys and certificates) is in .gitignore and .dockerignore."""
    patterns = {line.strip().rstrip("/") for line in
                (ROOT / ignore_file).read_text(encoding="utf-8").splitlines()}
    assert "deploy/tls" in patterns, f"{ignore_file} does not exclude deploy/tls/"
