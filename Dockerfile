# The job-runner image: Debian bookworm's Python 3.11 + the runner's wheels + the box code.
# Built offline by scripts/build-image.sh: the base comes from debootstrap + `docker import`
# (no registry) and wheels from build/wheels (pip-downloaded on the host).
ARG BASE=sandbox-base:bookworm

# Stage 1 installs the wheels into a venv; only the venv is copied on, so the wheel files
# (hundreds of MB) never end up in a layer of the final image.
FROM ${BASE} AS deps
COPY build/wheels /wheels
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /wheels \
        opendp polars pyarrow numpy pandas statsmodels \
 && /opt/venv/bin/pip uninstall -y pip setuptools \
 && /opt/venv/bin/python -m compileall -q /opt/venv/lib
# Bytecode is compiled into the image: the root filesystem is read-only at run time, so
# without it every job would recompile pandas/pyarrow/opendp imports (~0.5 s per run).

FROM ${BASE}
# uid 10001 owns nothing in the image; the backend runs every job as this user.
RUN echo 'runner:x:10001:10001:job runner:/tmp:/usr/sbin/nologin' >> /etc/passwd \
 && echo 'runner:x:10001:' >> /etc/group
COPY --from=deps /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONPATH=/opt/runner \
    PYTHONDONTWRITEBYTECODE=1 \
    LANG=C.UTF-8
# Last, so a change to the code rebuilds in seconds on top of the cached deps layers. Only the
# box code: the runner, the rules it re-checks (core) and the OpenDP measurements (privacy);
# the web app, store, agent and CLI never enter the image (tests/unit/test_box_imports.py).
COPY sandbox/__init__.py /opt/runner/sandbox/__init__.py
COPY sandbox/core /opt/runner/sandbox/core
COPY sandbox/privacy /opt/runner/sandbox/privacy
COPY sandbox/runner /opt/runner/sandbox/runner
RUN /opt/venv/bin/python -m compileall -q /opt/runner
USER 10001:10001
WORKDIR /tmp
CMD ["/opt/venv/bin/python", "-m", "sandbox.runner", "/job/job.json"]
