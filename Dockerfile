# syntax=docker/dockerfile:1
#
# Garonne's images, for docker-compose.yml:
#   target `host` (the last stage, the default): the host binary, the plugins, the stations data
#                 and the pipeline files, on Debian slim, as an unprivileged user;
#   target `web`: nginx serving the live map (web/public with its npm libraries) from the
#                 repository's deploy/nginx template.
#
#   docker build -t garonne-host .            docker build --target web -t garonne-web .

ARG RUST_VERSION=1.95
ARG DEBIAN=bookworm

# --- Rust: the plugins (wasm32-wasip2) and the host ------------------------------------------
FROM rust:${RUST_VERSION}-${DEBIAN} AS build
RUN rustup target add wasm32-wasip2
WORKDIR /src
COPY . .
# Cargo's registry and the target folders are build caches, not layers: the results are copied
# out to /out.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    --mount=type=cache,target=/src/plugins/target \
    cargo xtask build-plugins \
    && cargo build --release --locked --bin host \
    && mkdir -p /out/plugins \
    && cp target/release/host /out/host \
    && for plugin in weather air_quality bikes synthetic rolling_stats quality_filter avg_quartier \
                     thresholds fahrenheit; do \
         cp "plugins/target/wasm32-wasip2/release/$plugin.wasm" /out/plugins/; \
       done

# --- Node: the map's libraries (npm ci copies them into web/public/vendor and web/public/geo) -
FROM node:20-${DEBIAN}-slim AS web-assets
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
COPY web/scripts ./scripts
COPY web/public ./public
COPY data/geo /src/data/geo
# playwright-core is for the tests only.
RUN npm ci --omit=dev --no-audit --no-fund \
    && test -f public/vendor/leaflet/leaflet.js && test -f public/vendor/mqtt/mqtt.min.js

# --- nginx: the live map ----------------------------------------------------------------------
FROM nginx:1.27-alpine AS web
COPY --from=web-assets /src/web/public /usr/share/garonne/web
COPY deploy/nginx/nginx.conf /etc/garonne/nginx.conf.template
COPY deploy/compose/nginx-entrypoint.sh /usr/local/bin/garonne-nginx
RUN chmod 0755 /usr/local/bin/garonne-nginx && chmod -R a+rX /usr/share/garonne/web
EXPOSE 8080
STOPSIGNAL SIGQUIT
ENTRYPOINT ["/usr/local/bin/garonne-nginx"]

# --- the host ---------------------------------------------------------------------------------
FROM debian:${DEBIAN}-slim AS host
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --user-group --home-dir /var/lib/garonne --shell /usr/sbin/nologin garonne \
    && mkdir -p /var/lib/garonne \
    && chown garonne:garonne /var/lib/garonne
WORKDIR /opt/garonne
# The repository's layout, so that the pipeline files' relative paths hold.
COPY --from=build /out/host /usr/local/bin/host
COPY --from=build /out/plugins/ plugins/target/wasm32-wasip2/release/
COPY data/stations data/stations
COPY pipelines pipelines
COPY deploy/compose/pipeline.toml deploy/compose/pipeline.toml
ENV XDG_STATE_HOME=/var/lib/garonne XDG_CACHE_HOME=/var/lib/garonne/cache
USER garonne
VOLUME ["/var/lib/garonne"]
# tini forwards SIGTERM to the host, which then finishes the messages in hand and lets the
# historian write (or spool) what it holds.
ENTRYPOINT ["/usr/bin/tini", "--", "host"]
CMD ["run", "--config", "deploy/compose/pipeline.toml"]
