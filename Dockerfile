# layerserve in a slim image, running as a non-root user, configured by LAYERSERVE_* variables.
#
#   docker build -t layerserve .                                   CPU build (onnxruntime)
#   docker build --build-arg EXTRA=gpu -t layerserve:gpu .         GPU build (onnxruntime-gpu, CUDA from PyPI)
#
# BASE_IMAGE needs python3 with venv; the builder and the final stage use the same one because the
# virtual environment points at its interpreter. CA_BUNDLE optionally names a PEM file inside the
# build context that pip trusts while installing (for a TLS-intercepting proxy); only the builder
# stage sees it, so nothing of it reaches the final image.
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS builder
ARG EXTRA=server
ARG CA_BUNDLE=
WORKDIR /src
# With CA_BUNDLE unset this copies just pyproject.toml, LICENSE, the constraints and the stand-in maker.
COPY pyproject.toml LICENSE constraints.txt scripts/stub_packages.py ${CA_BUNDLE} ./
# The dependencies get a layer of their own (installed with empty stand-ins for the sources and
# the readme), so that changing the code or the docs does not download them again. Their versions
# are the tested ones of constraints.txt (scripts/lock_constraints.py writes it). The stand-ins'
# build output goes too: setuptools would keep it over the real sources, which are older.
RUN if [ -n "${CA_BUNDLE}" ]; then export PIP_CERT="/src/${CA_BUNDLE}" SSL_CERT_FILE="/src/${CA_BUNDLE}"; fi \
    && python3 -m venv /opt/layerserve \
    && touch README.md && python3 stub_packages.py \
    && /opt/layerserve/bin/pip install --no-cache-dir --disable-pip-version-check -c constraints.txt ".[${EXTRA}]" \
    && rm -rf README.md service client stub_packages.py build ./*.egg-info
COPY README.md ./
COPY service ./service
COPY client ./client
RUN if [ -n "${CA_BUNDLE}" ]; then export PIP_CERT="/src/${CA_BUNDLE}" SSL_CERT_FILE="/src/${CA_BUNDLE}"; fi \
    && /opt/layerserve/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps --force-reinstall .

FROM ${BASE_IMAGE}
# The state directory belongs to the service user before it becomes a volume, so a fresh named
# volume starts out writable for that user.
RUN groupadd --system --gid 10001 layerserve \
    && useradd --system --uid 10001 --gid layerserve --home-dir /var/lib/layerserve --no-create-home \
       --shell /usr/sbin/nologin layerserve \
    && mkdir -p /var/lib/layerserve \
    && chown layerserve:layerserve /var/lib/layerserve
COPY --from=builder /opt/layerserve /opt/layerserve
ENV PATH=/opt/layerserve/bin:${PATH} \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LAYERSERVE_HOST=0.0.0.0 \
    LAYERSERVE_PORT=8000 \
    LAYERSERVE_STATE_DIR=/var/lib/layerserve \
    LAYERSERVE_PROVIDERS=cpu
USER 10001:10001
WORKDIR /var/lib/layerserve
VOLUME ["/var/lib/layerserve"]
EXPOSE 8000
# Healthy means ready (/readyz): the state is loaded and ONNX Runtime runs, not merely alive.
HEALTHCHECK --interval=5s --timeout=3s --start-period=30s --retries=3 CMD ["python", "-m", "layerserve.server.healthcheck"]
ENTRYPOINT ["layerserve"]
CMD ["serve"]
