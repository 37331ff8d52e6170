# syntax=docker/dockerfile:1
# One image recipe for all seven services: `--build-arg SERVICE=<name>` picks the binary.
# The dependency layer (cargo-chef) and the build stage are the same for every service,
# so compose builds the workspace once and seven small runtime images from it.

FROM rust:1.95-slim-bookworm AS chef
RUN cargo install cargo-chef --locked
WORKDIR /app

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /app/recipe.json recipe.json
# Dependencies only: cached until Cargo.toml / Cargo.lock change.
RUN cargo chef cook --release --recipe-path recipe.json
COPY . .
# Queries are checked against the descriptions committed in .sqlx/, not a live database.
ENV SQLX_OFFLINE=true
RUN cargo build --release --locked \
      -p gateway -p tenant-resolver -p user-service \
      -p project-service -p url-shortener -p analytics-service -p notification-service

FROM debian:bookworm-slim AS runtime
# curl serves the compose healthchecks; ca-certificates lets services reach TLS endpoints.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin nexus \
 && install -d -o nexus -g nexus -m 0700 /var/lib/nexus/keys /var/lib/nexus/attachments
ARG SERVICE
COPY --from=builder /app/target/release/${SERVICE} /usr/local/bin/nexus-service
USER nexus
ENV LOG_FORMAT=json
ENTRYPOINT ["/usr/local/bin/nexus-service"]
