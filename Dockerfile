# empq: one image for the hub and the worker (`empq hub`, `empq worker`, any `empq` command).
#
#   docker build -t empq .                       # python:3.12-slim from a registry
#   docker build --target embedded -t empq:dev . # plus Debian's redis-server, for `empq dev`
#   docker run --rm -p 3001:3001 -p 3002:3002 empq:dev
#
# BASE_IMAGE is any Debian-based image with python3 and its venv module (where no
# registry is reachable, ../shared/containers/setup.sh makes one from Debian's
# packages). Build with `--format docker` under podman: its default OCI format drops
# HEALTHCHECK.
ARG BASE_IMAGE=python:3.12-slim

# ---- build: a virtualenv holding empq and its dependencies, nothing else
FROM ${BASE_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
RUN python3 -m venv /opt/empq
COPY pyproject.toml README.md /src/
COPY src /src/src
RUN /opt/empq/bin/pip install --quiet /src

# ---- runtime: the virtualenv on the same base, run as an unprivileged user
FROM ${BASE_IMAGE} AS runtime
ENV PATH=/opt/empq/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    EMPQ_HUB_HOST=0.0.0.0 \
    EMPQ_DATA_DIR=/var/lib/empq \
    EMPQ_ARTIFACT_DIR=/var/lib/empq/artifacts \
    EMPQ_LOG_FORMAT=json
RUN useradd --uid 10001 --home-dir /var/lib/empq --create-home empq \
    && install -d -o empq -g empq /var/lib/empq/artifacts
COPY --from=build /opt/empq /opt/empq
USER empq
WORKDIR /var/lib/empq
EXPOSE 3001 3002
# The hub's liveness endpoint; a worker's status port is optional (EMPQ_HTTP_PORT), so
# a worker container answers the check only when it opens one on 3001
# (EMPQ_HTTP_PORT=3001) or overrides it (compose `healthcheck:` / `--no-healthcheck`).
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python3", "-c", "import os,sys,urllib.request as u; u.urlopen('http://127.0.0.1:%s/health' % os.environ.get('EMPQ_HUB_PORT', '3001'), timeout=2); sys.exit(0)"]
CMD ["empq", "hub"]

# ---- embedded: runtime plus Debian's redis-server, so `empq dev` runs in one container
FROM runtime AS embedded
USER root
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/*
USER empq
CMD ["empq", "dev"]

# ---- the default target: the hub/worker image
FROM runtime
