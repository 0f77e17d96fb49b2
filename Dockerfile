# syntax=docker/dockerfile:1
# wework-msgaudit container image. Not built in this repository's CI (no Docker engine there):
# tests/deploy_files.rs checks this file's invariants instead (see README "Running in Docker").
#
#   docker build -t wework-msgaudit .
#   docker run -d --name wework-msgaudit --stop-timeout 40 \
#     -v /srv/wework/libWeWorkFinanceSdk_C.so:/opt/wework-msgaudit/lib/libWeWorkFinanceSdk_C.so:ro \
#     -v /srv/wework/config.toml:/opt/wework-msgaudit/config.toml:ro \
#     -v wework-data:/opt/wework-msgaudit/data -v wework-msgfile:/opt/wework-msgaudit/msgfile \
#     -p 127.0.0.1:9100:9100 wework-msgaudit
#
# Both stages use Debian 12 "bookworm", so the FFmpeg libraries the binary was linked against in
# the builder (FFmpeg 5.1) are the very ones installed in the runtime image.
#
# Base images are pinned by digest (a tag moves; a digest names one image): rust:1.98.1-bookworm
# and debian:bookworm-slim (the bookworm-20260713-slim build). To update: `docker buildx
# imagetools inspect rust:1-bookworm` (and debian:bookworm-slim), put the new index digests
# here, rebuild, run the tests. tests/deploy_files.rs requires the pins.

# ---- builder ------------------------------------------------------------------------------------
FROM rust:1.98.1-bookworm@sha256:93ce27a88655056a51dbdd8f5f2d7ddc071c7b0070fb288a37b5a285fc83971e AS builder
# ffmpeg-next needs the FFmpeg headers + pkg-config, and clang/libclang for its bindgen step.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      pkg-config clang libclang-dev libavformat-dev libavcodec-dev libavutil-dev libswresample-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# --locked: exactly the dependency versions of Cargo.lock. The cache mounts keep the registry and
# target/ between builds; the binary is copied out of the cache mount, without its debug info
# (the release profile keeps line tables for backtraces in development builds; the image gets
# symbol names only: a panic's backtrace still names the functions).
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin wework-msgaudit --bin wework-msgaudit-sdk-worker \
 && install -D -m 0755 target/release/wework-msgaudit /out/wework-msgaudit \
 && install -D -m 0755 target/release/wework-msgaudit-sdk-worker /out/wework-msgaudit-sdk-worker \
 && strip --strip-debug /out/wework-msgaudit /out/wework-msgaudit-sdk-worker

# ---- runtime ------------------------------------------------------------------------------------
FROM debian:bookworm-slim@sha256:7b140f374b289a7c2befc338f42ebe6441b7ea838a042bbd5acbfca6ec875818
# Runtime libraries only, no -dev packages, no compiler:
#   libavcodec59 (libavcodec.so.59), libswresample4 (libswresample.so.4), libavutil57
#   (libavutil.so.57): what `ldd wework-msgaudit` lists (the daemon never links libavformat);
#   zlib1g: needed by the vendor SDK (libz.so.1); ca-certificates: TLS to MySQL/S3 endpoints;
#   tini: PID 1 that forwards SIGTERM (and SIGHUP: `docker kill -s HUP` reloads) to the daemon and
#   reaps zombies.
# X11: Debian builds libavutil57 with VAAPI/VDPAU, so it depends on libx11-6, libva-x11-2 and
# libvdpau1 (libavcodec-extra59 too); the daemon never opens a display, but the libraries come
# along. Only an FFmpeg built without them (--disable-autodetect) would avoid that.
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libavcodec59 libswresample4 libavutil57 zlib1g ca-certificates tini \
 && rm -rf /var/lib/apt/lists/*
# A dedicated unprivileged user (fixed ids, so volume ownership is predictable).
RUN groupadd --system --gid 10001 wework \
 && useradd --system --uid 10001 --gid wework --home-dir /opt/wework-msgaudit --no-create-home \
      --shell /usr/sbin/nologin wework
WORKDIR /opt/wework-msgaudit
# The daemon and, beside it, the lean program of its sdk-worker children (the vendor SDK runs in
# them; without it the daemon would exec its own, much larger, binary for each).
COPY --from=builder /out/wework-msgaudit /out/wework-msgaudit-sdk-worker /opt/wework-msgaudit/bin/
COPY config/example.toml /opt/wework-msgaudit/config.example.toml
# The vendor SDK is NOT in the image (Tencent's binary: never committed, never baked in). Mount it
# read-only at /opt/wework-msgaudit/lib/libWeWorkFinanceSdk_C.so (the default [sdk] library path,
# relative to this WORKDIR); see lib/README.md for where to get it.
RUN install -d -m 0700 -o wework -g wework /opt/wework-msgaudit/data /opt/wework-msgaudit/msgfile \
 && install -d /opt/wework-msgaudit/lib
USER wework
# SQLite (url = "sqlite://data/wework-msgaudit.db") and media ([media] root = "msgfile").
VOLUME ["/opt/wework-msgaudit/data", "/opt/wework-msgaudit/msgfile"]
# /healthz, /metrics, /status when config.toml sets [http] listen = "0.0.0.0:9100" (off by default).
EXPOSE 9100
# No HEALTHCHECK: the slim image has no curl/wget, and whether (and where) the HTTP endpoint
# listens is decided by the mounted config.toml. Probe http://<container>:9100/healthz from the
# orchestrator (Kubernetes httpGet, a monitoring system) instead.
# SIGTERM: the daemon finishes in-flight writes and exits 0 within [daemon] shutdown_grace (30 s);
# Docker's default stop timeout is 10 s, so run with --stop-timeout 40 (compose: stop_grace_period: 40s).
STOPSIGNAL SIGTERM
ENV RUST_BACKTRACE=1
ENTRYPOINT ["/usr/bin/tini", "--", "/opt/wework-msgaudit/bin/wework-msgaudit"]
# The configuration is mounted (it names the database and may hold its password).
CMD ["run", "--config", "/opt/wework-msgaudit/config.toml"]
