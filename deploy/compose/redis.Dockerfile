# Redis from Debian, on the same base as the service image (no registry needed).
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}
# The redis user is made first, with a fixed id, so that the package adopts it.
# hadolint ignore=DL3008
RUN groupadd --system --gid 10002 redis \
    && useradd --system --uid 10002 --gid redis --home-dir /data --no-create-home --shell /usr/sbin/nologin redis \
    && apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /data && chown redis:redis /data
USER 10002:10002
WORKDIR /data
VOLUME ["/data"]
EXPOSE 6379
# Every acknowledged write is in the fsynced append-only file before the reply leaves.
CMD ["redis-server", "--bind", "0.0.0.0", "--protected-mode", "no", "--dir", "/data", "--save", "", \
     "--appendonly", "yes", "--appendfsync", "always"]
