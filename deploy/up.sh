#!/usr/bin/env bash
# One command: build the images locally, then start PostgreSQL, Redis, the migration, the API
# and the workers (deploy/compose.yaml). Needs deploy/.env (copy deploy/env.example).
set -euo pipefail
cd "$(dirname "$0")"
[ -f .env ] || { echo "deploy/.env missing: cp deploy/env.example deploy/.env and fill it in" >&2; exit 2; }
bash build-images.sh
# The work area on the host, at the same path in the containers: the API runs as the service
# user (uid 10002, images/app.Dockerfile) and keeps the signing key and uploads there, so it
# must own it (a root-owned directory stops every API worker at boot: "Permission denied").
HOST_HOME=$(sed -n 's/^SANDBOX_HOST_HOME=//p' .env | tail -1)
install -d -m 0750 -o 10002 -g 10002 "${HOST_HOME:-/srv/sandbox}"
# Compose v2 (the docker CLI plugin) or v1 (Debian bookworm's docker-compose package).
# Neither: Debian's package, where apt-get is there (as on this project's build machine).
if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null; then
    command -v apt-get >/dev/null || { echo "install Docker Compose (plugin or docker-compose) first" >&2; exit 2; }
    apt-get install -y docker-compose
fi
if docker compose version >/dev/null 2>&1; then COMPOSE=(docker compose); else COMPOSE=(docker-compose); fi
WORKERS=$(sed -n 's/^SANDBOX_WORKERS=//p' .env | tail -1)
# --scale as well as deploy.replicas: Compose v1 ignores the latter.
"${COMPOSE[@]}" -p sandbox -f compose.yaml up -d --scale "worker=${WORKERS:-2}" "$@"
"${COMPOSE[@]}" -p sandbox -f compose.yaml ps
