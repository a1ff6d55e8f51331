# Redis (the Celery broker) from Debian's packages on the locally built base (no registry).
ARG BASE=sandbox-base:bookworm
FROM ${BASE}
RUN apt-get update && apt-get install -y --no-install-recommends redis-server \
 && rm -rf /var/lib/apt/lists/*
USER redis
EXPOSE 6379
CMD ["sh", "-c", "exec redis-server --bind 0.0.0.0 --requirepass \"${REDIS_PASSWORD:?set REDIS_PASSWORD}\" --appendonly yes --dir /var/lib/redis"]
