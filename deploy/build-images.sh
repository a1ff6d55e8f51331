#!/usr/bin/env bash
# Build every image of deploy/compose.yaml on this host, without any registry:
#   1. the Debian base and the job-runner image (scripts/build-image.sh: debootstrap + import)
#   2. the application's wheels, pip-downloaded on the host into build/app-wheels
#   3. sandbox-app (from a staged context: build/app-context), sandbox-postgres and sandbox-redis
#      from deploy/images/*.Dockerfile
# Idempotent; REFRESH_WHEELS=1 downloads the wheels again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-image.sh
PIP=.venv/bin/pip
[ -x "$PIP" ] || PIP="python3 -m pip"
if [ "${REFRESH_WHEELS:-0}" = 1 ] || [ ! -d build/app-wheels ]; then
    rm -rf build/app-wheels
    # Wheels for the base image's Python (Debian bookworm: CPython 3.11.2, glibc).
    mapfile -t DEPS < <(python3 -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))")
    # async-timeout: redis needs it below Python 3.11.3, a marker pip does not evaluate for
    # another interpreter; setuptools and wheel build the package itself offline.
    $PIP download -q -d build/app-wheels --python-version 3.11.2 --only-binary=:all: "${DEPS[@]}" \
        setuptools wheel "async-timeout>=4.0.3"
fi
# The app's build context is staged: the repository's .dockerignore admits only the box code,
# and var/ (raw data) must never reach the Docker daemon.
CTX=build/app-context
rm -rf "$CTX" && mkdir -p "$CTX/deploy"
cp -r pyproject.toml sandbox datasets policies "$CTX/"
cp -r build/app-wheels "$CTX/wheels"
cp deploy/gunicorn.conf.py "$CTX/deploy/"
find "$CTX" -name __pycache__ -prune -exec rm -rf {} +
docker build -q -f deploy/images/app.Dockerfile -t sandbox-app:local "$CTX" >/dev/null
echo "image sandbox-app:local built"
for name in postgres redis; do
    docker build -q -f "deploy/images/$name.Dockerfile" -t "sandbox-$name:local" deploy/images >/dev/null
    echo "image sandbox-$name:local built"
done
