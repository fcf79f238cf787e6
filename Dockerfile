# The gateway image. Build: docker build -t cognito-gateway .
# BASE may be any Debian-based image with python3 (>= 3.11) and its venv module: only
# `python3 -m venv` and pip are used, never apt, so a distro image built offline works too.
ARG BASE=python:3.12-slim
FROM ${BASE}

# Optional CA bundle path for pip, for builds behind a TLS-intercepting proxy
# (mount the bundle with the build and pass --build-arg PIP_CERT=/path). Empty = pip's default.
ARG PIP_CERT=""

ENV VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    GATEWAY_LISTEN=0.0.0.0:8080

EXPOSE 8080

# Python instead of curl (absent from slim images); asks the port from GATEWAY_LISTEN.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; h, _, p = os.environ.get('GATEWAY_LISTEN', '0.0.0.0:8080').rpartition(':'); h = h.strip('[]'); h = {'': '127.0.0.1', '0.0.0.0': '127.0.0.1', '::': '::1'}.get(h, h); h = f'[{h}]' if ':' in h else h; urllib.request.urlopen(f'http://{h}:{p}/healthz', timeout=4)"]

ENTRYPOINT ["python", "-m", "gateway"]
CMD ["run", "--config", "/etc/gateway/gateway.yaml"]

# Everything above stays cached; only the steps below rerun, so they are few and come last.
WORKDIR /src

# Dependencies and build requirements first, read from pyproject.toml, so editing the code does not
# reinstall them (nor download setuptools again for every build).
COPY pyproject.toml constraints.txt ./
RUN python3 -m venv /opt/venv \
    && python -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb')); print('\n'.join(p['build-system']['requires'] + p['project']['dependencies']))" > requirements.txt \
    && pip install --no-cache-dir -c constraints.txt -r requirements.txt

# The project itself (--no-deps: they are all in the layer above); config/ becomes /etc/gateway.
COPY . .
RUN pip install --no-cache-dir --no-deps --no-build-isolation . \
    && mkdir -p /etc/gateway \
    && cp -r config/. /etc/gateway/ \
    && rm -rf /src/*

# Any non-root uid works: nothing is written at run time, so no account is needed
# (useradd is missing from minimal Debian roots).
USER 10001:10001
