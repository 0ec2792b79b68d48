# okrsync daemon image.
#
#   docker build -t okrsync .
#   docker run -d -p 8080:8080 \
#     -v "$PWD/okrs.yaml:/config/okrs.yaml:ro" -v okrsync-data:/data \
#     -e JIRA_EMAIL -e JIRA_API_TOKEN -e GITHUB_TOKEN okrsync
#
# The config is mounted at /config/okrs.yaml (read-only is fine). The store lives on the /data
# volume: set `store: sqlite:////data/okrsync.db` in the config (four slashes: an absolute path),
# or a PostgreSQL URL. Secrets come from the environment through `${NAME}` in the config; never
# bake them into the image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    OKRSYNC_CONFIG=/config/okrs.yaml

WORKDIR /src
COPY pyproject.toml README.md ./
COPY syncer ./syncer
COPY connectors ./connectors
RUN pip install --no-cache-dir . \
    && rm -rf /src

RUN groupadd --system okrsync \
    && useradd --system --gid okrsync --home-dir /data --no-create-home --shell /usr/sbin/nologin okrsync \
    && mkdir -p /config /data \
    && chown okrsync:okrsync /data

USER okrsync
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080

# No curl in slim images: ask the daemon's /healthz with the standard library (non-2xx -> exit 1).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4).status == 200 else 1)"]

# Inside a container the listener must bind every interface (0.0.0.0), or the published port and
# other containers cannot reach it; the daemon's own default is 127.0.0.1 for use on a host.
CMD ["okrsync", "daemon", "--listen", "0.0.0.0:8080"]
