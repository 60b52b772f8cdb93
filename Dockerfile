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
RUN pip install --no-cache-dir . \
    && mkdir -p /data/outbox \
    && chown -R complaints:complaints /data
# (a new named volume mounted on /data starts with this ownership)

USER 10001:10001

CMD ["sh", "-c", "complaints db upgrade && exec python worker.py"]
