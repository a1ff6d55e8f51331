#!/usr/bin/env bash
# Make the isolation backends usable on this machine: Docker engine (with gVisor's runsc
# registered as a runtime) and bubblewrap. Idempotent; safe to run on every boot/CI job.
set -euo pipefail

LOG=${DOCKERD_LOG:-/tmp/dockerd.log}
DAEMON_JSON=/etc/docker/daemon.json
export DEBIAN_FRONTEND=noninteractive

need_pkg() {  # need_pkg <command> <debian package>
    command -v "$1" >/dev/null 2>&1 && return 0
    echo "installing $2 ..."
    apt-get -o DPkg::Lock::Timeout=600 install -y "$2" >/dev/null 2>&1 || { apt-get -o DPkg::Lock::Timeout=600 update >/dev/null && apt-get -o DPkg::Lock::Timeout=600 install -y "$2" >/dev/null; }
}

need_pkg dockerd docker.io
need_pkg runsc runsc
need_pkg bwrap bubblewrap

# Register runsc. --network=none: the box never has a network anyway, and gVisor's own netstack
# is then not even started; --ignore-cgroups: runsc fails to start containers with this
# machine's cgroup v1 setup. Docker's cgroup limits then do not apply under runsc; the backend
# sets rlimits (nproc, as) that gVisor's kernel enforces instead. --oci-seccomp: without it
# gVisor ignores the container's seccomp profile, and a job could create user and mount
# namespaces inside the sandbox kernel (tests/security found this); with it Docker's default
# profile applies inside gVisor as it does under runc.
mkdir -p /etc/docker
changed=$(DAEMON_JSON=$DAEMON_JSON /usr/bin/python3 - <<'EOF'
import json, os
path = os.environ["DAEMON_JSON"]
try:
    with open(path) as f:
        cfg = json.load(f)
except FileNotFoundError:
    cfg = {}
want = {"path": "/usr/bin/runsc", "runtimeArgs": ["--network=none", "--ignore-cgroups", "--oci-seccomp"]}
if cfg.get("runtimes", {}).get("runsc") != want:
    cfg.setdefault("runtimes", {})["runsc"] = want
    with open(path + ".tmp", "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    os.replace(path + ".tmp", path)
    print("yes")
else:
    print("no")
EOF
)

if docker info >/dev/null 2>&1; then
    if [ "$changed" = yes ] || ! docker info --format '{{json .Runtimes}}' | grep -q '"runsc"'; then
        # dockerd reloads the "runtimes" section of daemon.json on SIGHUP, no restart needed.
        echo "reloading dockerd to register runsc"
        kill -HUP "$(pidof dockerd)"
        sleep 1
    fi
else
    if ! pidof dockerd >/dev/null; then
        # A dockerd killed with the session that started it leaves its pid files behind. In a
        # new process tree that pid may belong to anything, and dockerd then refuses to start
        # ("pid file found, ensure docker is not running"), which is how a CI run lost Docker.
        rm -f /var/run/docker.pid /var/run/docker/containerd/containerd.pid
        echo "starting dockerd (log: $LOG)"
        nohup dockerd >"$LOG" 2>&1 &
    fi
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    if ! docker info >/dev/null 2>&1; then
        echo "dockerd did not answer within 60 s; the end of $LOG:" >&2
        tail -n 30 "$LOG" >&2 || true
        exit 1
    fi
fi

[ "$changed" = yes ] && echo "registered runsc in $DAEMON_JSON"
docker info --format 'docker {{.ServerVersion}}, runtimes: {{range $k, $v := .Runtimes}}{{$k}} {{end}}'
bwrap --version
