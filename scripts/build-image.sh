#!/usr/bin/env bash
# Build the job-runner image without any image registry:
#   1. base image from debootstrap (Debian mirror only) + `docker import`   (skipped if present)
#   2. runner wheels pip-downloaded on the host into build/wheels           (skipped if present)
#   3. docker build of ./Dockerfile                                         (cached layers)
# Idempotent. Env: SANDBOX_IMAGE (default sandbox-runner:latest), SANDBOX_BASE_IMAGE,
# DEBIAN_MIRROR, REBUILD_BASE=1 / REFRESH_WHEELS=1 to force steps 1 / 2.
set -euo pipefail

cd "$(dirname "$0")/.."
REPO=$(pwd)
IMAGE=${SANDBOX_IMAGE:-sandbox-runner:latest}
BASE=${SANDBOX_BASE_IMAGE:-sandbox-base:bookworm}
WHEELS=$REPO/build/wheels
# What the runner imports (sandbox.runner: OpenDP, Polars, pyarrow, numpy; pandas for program mode;
# statsmodels for the models of reviewed mode that trusted code fits).
RUNNER_PKGS=(opendp polars pyarrow numpy pandas statsmodels)

now() { echo "$EPOCHREALTIME"; }
took() { awk -v a="$2" -v b="$(now)" -v what="$1" 'BEGIN { printf "%s: %.1f s\n", what, b - a }'; }
T0=$(now)

# The mirror this machine's apt uses (works when only the Debian mirror is reachable).
if [ -z "${DEBIAN_MIRROR:-}" ]; then
    DEBIAN_MIRROR=$(grep -hsoE '^URIs: *http[^ ]*/debian$' /etc/apt/sources.list.d/*.sources | head -1 | sed 's/^URIs: *//')
    DEBIAN_MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
fi

docker info >/dev/null 2>&1 || { echo "docker daemon not reachable; run scripts/start-docker.sh" >&2; exit 1; }

# --- 1. base image ---------------------------------------------------------------------------
t=$(now)
if [ "${REBUILD_BASE:-0}" = 1 ] || ! docker image inspect "$BASE" >/dev/null 2>&1; then
    command -v debootstrap >/dev/null || apt-get -o DPkg::Lock::Timeout=600 install -y debootstrap
    mkdir -p "$REPO/build"
    ROOTFS=$(mktemp -d /var/tmp/sandbox-rootfs.XXXXXX)
    trap 'rm -rf "$ROOTFS"' EXIT
    echo "debootstrap bookworm from $DEBIAN_MIRROR ..."
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        bookworm "$ROOTFS" "$DEBIAN_MIRROR" >"$REPO/build/debootstrap.log" 2>&1 \
        || { tail -20 "$REPO/build/debootstrap.log" >&2; exit 1; }
    # Package caches are dead weight in the image.
    rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/* "$ROOTFS"/tmp/*
    tar -C "$ROOTFS" -c . | docker import \
        -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        -c 'CMD ["/bin/bash"]' - "$BASE" >/dev/null
    rm -rf "$ROOTFS"; trap - EXIT
    took "base image $BASE (debootstrap + import)" "$t"
else
    echo "base image $BASE present"
fi

# --- 2. wheels -------------------------------------------------------------------------------
# Pin to the versions in the host venv when there is one, so code tested on the host runs
# against the same libraries inside the image.
t=$(now)
PIP=$REPO/.venv/bin/pip
[ -x "$PIP" ] || PIP="python3 -m pip"
REQS=()
for p in "${RUNNER_PKGS[@]}"; do
    v=$($PIP show "$p" 2>/dev/null | sed -n 's/^Version: //p' || true)
    REQS+=("${p}${v:+==$v}")
done
STAMP="$WHEELS/.requirements"
if [ "${REFRESH_WHEELS:-0}" = 1 ] || [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "${REQS[*]}" ]; then
    rm -rf "$WHEELS"; mkdir -p "$WHEELS"
    # The image's interpreter is bookworm's CPython 3.11 on x86_64 glibc 2.36.
    $PIP download --quiet --dest "$WHEELS" --only-binary=:all: \
        --python-version 3.11 --implementation cp --abi cp311 \
        --platform manylinux_2_36_x86_64 --platform manylinux_2_28_x86_64 \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        --platform linux_x86_64 \
        "${REQS[@]}"
    echo "${REQS[*]}" >"$STAMP"
    took "wheels ($(ls "$WHEELS"/*.whl | wc -l) files, $(du -sh "$WHEELS" | cut -f1))" "$t"
else
    echo "wheels present: ${REQS[*]}"
fi

# --- 3. runner image -------------------------------------------------------------------------
t=$(now)
# Legacy builder: works with a bare dockerd, no buildx plugin needed.
DOCKER_BUILDKIT=0 docker build --quiet --build-arg "BASE=$BASE" -t "$IMAGE" "$REPO" >/dev/null \
    2> >(grep -v -E 'DEPRECATED|BuildKit|environment-variable|^[[:space:]]*$' >&2)
took "docker build $IMAGE" "$t"

docker run --rm --network none "$IMAGE" python -c 'import sys, importlib.metadata as m, opendp, polars, pyarrow, numpy, pandas, statsmodels.api
print("image ok: python", sys.version.split()[0], *(f"{p} {m.version(p)}" for p in ("opendp", "polars", "pyarrow", "numpy", "pandas", "statsmodels")))'
took "total" "$T0"
