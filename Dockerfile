# syntax=docker/dockerfile:1
#
# Herald container image.
#
#   docker build -t herald .
#   docker run --rm -p 8080:8080 --ulimit nofile=65536:65536 herald        # dev mode, embedded SQLite
#   docker compose up -d --build                                         # herald + MySQL 8 + Redis
#
# The bundled config/herald.toml is in dev mode (demo users, public default JWT secret).
# In production always pass HERALD_DEV=0, HERALD_JWT_SECRET and HERALD_DATABASE_URL.
#
# Open files: every client connection is one file descriptor, and Docker's default
# limit depends on the daemon (sometimes only 1024). Give the container a limit above
# server.max_connections (19000 by default): `--ulimit nofile=65536:65536`, or
# `ulimits: nofile:` in compose (docker-compose.yml does), or the daemon's
# "default-ulimits" in /etc/docker/daemon.json.
#
# Stopping: Herald drains for up to server.shutdown_deadline_ms (10 s) after SIGTERM;
# Docker's default grace period is also 10 s, so stop with `docker stop -t 20`
# (compose sets stop_grace_period: 20s).

############################ build ############################
FROM rust:1-bookworm AS build
WORKDIR /src

# 1. Dependencies only, so that they stay cached while the sources change: the manifest
#    and lock file, with a placeholder for every target path the manifest names. This
#    step only warms the cache; if it ever fails, the real build below does everything.
COPY Cargo.toml Cargo.lock ./
RUN set -eu; \
    for f in src/main.rs $(sed -n 's/^path *= *"\(.*\.rs\)".*/\1/p' Cargo.toml); do \
        mkdir -p "$(dirname "$f")"; echo 'fn main() {}' > "$f"; \
    done; \
    cargo build --release --locked --bin herald || echo "dependency pre-build skipped"

# 2. The real sources. COPY keeps the files' own modification times, which can be older
#    than the placeholder build, so drop the placeholder's artifacts to force a rebuild.
COPY . .
RUN rm -rf target/release/herald target/release/deps/herald-* target/release/.fingerprint/herald-* \
 && cargo build --release --locked --bin herald \
 && cp target/release/herald /usr/local/bin/herald \
 && strip --strip-debug /usr/local/bin/herald

############################ runtime ############################
FROM debian:bookworm-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 herald \
 && useradd --system --uid 10001 --gid herald --home-dir /app --no-create-home --shell /usr/sbin/nologin herald \
 && mkdir -p /app/config /app/data \
 && chown herald:herald /app/data

WORKDIR /app
COPY --from=build /usr/local/bin/herald /usr/local/bin/herald
COPY config/herald.toml /app/config/herald.toml

# The embedded SQLite default (sqlite://data/herald.db) lives here; unused with MySQL.
VOLUME /app/data

ENV HERALD_BIND=0.0.0.0:8080 \
    RUST_LOG=info
EXPOSE 8080

USER herald:herald

# No curl in the slim image: bash opens the TCP connection itself (port taken from
# HERALD_BIND) and checks that GET /health answers 200.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["/bin/bash", "-c", "p=${HERALD_BIND##*:}; exec 3<>/dev/tcp/127.0.0.1/${p:-8080} || exit 1; printf 'GET /health HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3; IFS= read -r -t 4 status <&3 || exit 1; while read -r -t 1 _ <&3; do :; done; case $status in *' 200 '*) exit 0 ;; *) exit 1 ;; esac"]

STOPSIGNAL SIGTERM

# `docker run IMAGE` serves; `docker run IMAGE migrate` or `... user add NAME` run the
# other subcommands. The working directory is /app, so config/herald.toml is found there;
# pass `--config PATH` to use another file.
ENTRYPOINT ["/usr/local/bin/herald"]
