#!/usr/bin/env bash
# One command: build the images locally, then start PostgreSQL, Redis, the migration, the API
# and the workers (deploy/compose.yaml). Needs deploy/.env (copy deploy/env.example).
set -euo pipefail
cd "$(dirname "$0")"
[ -f .env ] || { echo "deploy/.env missing: cp deploy/env.example deploy/.env and fill it in" >&2; exit 2; }
bash build-images.sh
docker compose -f compose.yaml up -d "$@"
docker compose -f compose.yaml ps
