# The sandbox application (API under gunicorn, and the Celery workers): Debian bookworm's
# Python from the locally built base (scripts/build-image.sh: debootstrap + docker import, no
# registry) and wheels downloaded on the host by deploy/build-images.sh, which stages the
# build context (build/app-context: the package, manifests, policies, wheels; never var/).
ARG BASE=sandbox-base:bookworm
FROM ${BASE}
# Dependencies first, code last: a code change rebuilds in seconds on the cached layers.
COPY wheels /wheels
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --no-index /wheels/*.whl \
 && /opt/venv/bin/python -m compileall -q /opt/venv/lib \
 && useradd --system --uid 10002 --home-dir /srv/sandbox --shell /usr/sbin/nologin sandbox
COPY pyproject.toml /src/pyproject.toml
COPY sandbox /src/sandbox
COPY deploy/gunicorn.conf.py /src/deploy/gunicorn.conf.py
COPY datasets /src/datasets
COPY policies /src/policies
RUN /opt/venv/bin/pip install --no-cache-dir --no-index --no-deps --no-build-isolation /src \
 && /opt/venv/bin/python -m compileall -q /opt/venv/lib
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 \
    SANDBOX_GUNICORN_CONFIG=/src/deploy/gunicorn.conf.py \
    SANDBOX_MANIFESTS_DIR=/src/datasets \
    SANDBOX_POLICIES_DIR=/src/policies
# Never root: the API needs nothing privileged; workers reach the host's Docker engine
# through its socket, granted by group (see deploy/README.md).
USER sandbox
WORKDIR /srv/sandbox
