# syntax=docker/dockerfile:1
# The complaints worker image: `docker build -t complaints-worker .`
# Default command: apply database migrations, then run the Temporal worker.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    DATA_DIR=/data \
    OUTBOX_DIR=/data/outbox

# An unprivileged user with a fixed uid/gid (so volume ownership is predictable).
RUN groupadd --system --gid 10001 complaints \
    && useradd --system --uid 10001 --gid complaints --home-dir /app --shell /usr/sbin/nologin complaints

# What WeasyPrint prints letters to PDF with (scripts/ensure_system_libs.sh installs the
# same on a developer's machine): Pango, HarfBuzz's font subsetter and a font.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
       libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# pyproject.toml names README.md as the package readme, so the build needs it.
COPY pyproject.toml README.md ./
COPY complaints/ ./complaints/
COPY workflows/ ./workflows/
COPY activities/ ./activities/
COPY models/ ./models/
COPY domain/ ./domain/
COPY worker.py alembic.ini ./

# Runtime dependencies only (no [dev] extras). The source stays in /app too:
# `python worker.py` and alembic.ini are used from here.
# Compiled once here: the worker runs from /app (not site-packages), PYTHONDONTWRITEBYTECODE
# stops it writing .pyc, and Temporal's sandbox imports the workflow module afresh for every
# case it runs, which would otherwise compile the source every time.
RUN pip install --no-cache-dir . \
    && python -m compileall -q /app/complaints /app/workflows /app/activities /app/models \
       /app/domain /app/worker.py \
    && mkdir -p /data/outbox \
    && chown -R complaints:complaints /data
# (a new named volume mounted on /data starts with this ownership)

USER 10001:10001

CMD ["sh", "-c", "complaints db upgrade && exec python worker.py"]
