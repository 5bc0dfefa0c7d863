# syntax=docker/dockerfile:1
# The `rollcall` binary (serve, api, gateway, project and the admin commands), with the
# KurrentDB backend compiled in. Build: `docker build -t rollcall .` (docker compose does it).

FROM rust:1.95-slim-bookworm AS builder
WORKDIR /src
COPY . .
# The caches keep the registry and the build between image builds; the binary is copied out
# of the cached target folder because cache mounts are not part of the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p rollcall-cli --features kurrentdb \
    && cp target/release/rollcall /usr/local/bin/rollcall

FROM debian:bookworm-slim AS runtime
# curl is for the health checks; ca-certificates for TLS to managed PostgreSQL/KurrentDB/SMTP.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /var/lib/rollcall --create-home rollcall
COPY --from=builder /usr/local/bin/rollcall /usr/local/bin/rollcall
USER rollcall
WORKDIR /var/lib/rollcall
ENV ROLLCALL_DATA_DIR=/var/lib/rollcall
VOLUME ["/var/lib/rollcall"]
EXPOSE 7070 7071 7080
ENTRYPOINT ["/usr/local/bin/rollcall"]
CMD ["serve", "--listen", "0.0.0.0:7070"]
