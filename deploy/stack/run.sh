#!/usr/bin/env bash
# Garonne's stack without Docker: Mosquitto, InfluxDB 1.x, nginx (the live map), Grafana when it
# is installed, and the host (the simulated fleet, the processors and the historian), all on
# 127.0.0.1, from Debian's packages and the repository. docker-compose.yml runs the same stack
# where Docker is available.
#
#   deploy/stack/run.sh start     start everything (builds the host and the plugins if missing)
#   deploy/stack/run.sh status    what runs, where; exit status 0 only if everything runs
#   deploy/stack/run.sh stop      stop everything, the host first (its historian writes what it holds)
#   deploy/stack/run.sh logs [SERVICE]   the last lines of the logs
#
# Needs: apt-get install mosquitto influxdb nginx curl (and npm, once: `cd web && npm ci`, for
# the map's libraries). Grafana is not in Debian: install it from Grafana's own packages if you
# want it; the script starts `grafana-server` (or `grafana server`) when it finds one.
#
# Settings, from the environment (the defaults in brackets):
#   GARONNE_STACK_DIR            the state folder: configs, data, logs, pid files [REPO/.stack]
#   GARONNE_STACK_MQTT_PORT      MQTT over TCP, password required [1883]
#   GARONNE_STACK_WS_PORT        MQTT over WebSocket, anonymous and read-only [9001]
#   GARONNE_STACK_INFLUX_PORT    InfluxDB's HTTP API [8086]
#   GARONNE_STACK_INFLUX_RPC_PORT  InfluxDB's backup/restore RPC [8088]
#   GARONNE_STACK_WEB_PORT       the live map (nginx) [8080]
#   GARONNE_STACK_GRAFANA_PORT   Grafana [3000]
#   GARONNE_STACK_GRAFANA        auto (if installed), on (required) or off [auto]
#   GARONNE_STACK_PIPELINE       the host's pipeline file [deploy/stack/pipeline.toml]
#   GARONNE_HOST_BIN             the host binary [REPO/target/release/host, built if missing]
#   GARONNE_MQTT_PASSWORD, GARONNE_MQTT_READER_PASSWORD, GRAFANA_ADMIN_PASSWORD: generated on
#                                the first start and kept in STATE/secrets.env when not given
# The ports a start used are kept in STATE/stack.env, so `status` and `stop` need no settings.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$SCRIPT_DIR/../.." && pwd)"
STATE="${GARONNE_STACK_DIR:-$REPO/.stack}"
RUN="$STATE/run"
LOGS="$STATE/logs"
# Start order; `stop` goes the other way.
SERVICES=(influxdb mosquitto nginx grafana host)

say() { printf 'garonne-stack: %s\n' "$*"; }
die() { printf 'garonne-stack: error: %s\n' "$*" >&2; exit 1; }

# --- settings ------------------------------------------------------------------------------------

load_settings() {
    # What the last start used wins over the defaults (not over the environment).
    if [[ -f "$STATE/stack.env" ]]; then
        local line name
        while IFS= read -r line; do
            name="${line%%=*}"
            if [[ "$name" =~ ^[A-Z_]+$ && -z "${!name:-}" ]]; then
                # shellcheck disable=SC2163 # NAME=value: exports NAME
                export "$line"
            fi
        done <"$STATE/stack.env"
    fi
    MQTT_PORT="${GARONNE_STACK_MQTT_PORT:-1883}"
    WS_PORT="${GARONNE_STACK_WS_PORT:-9001}"
    INFLUX_PORT="${GARONNE_STACK_INFLUX_PORT:-8086}"
    INFLUX_RPC_PORT="${GARONNE_STACK_INFLUX_RPC_PORT:-8088}"
    WEB_PORT="${GARONNE_STACK_WEB_PORT:-8080}"
    GRAFANA_PORT="${GARONNE_STACK_GRAFANA_PORT:-3000}"
    GRAFANA_MODE="${GARONNE_STACK_GRAFANA:-auto}"
    PIPELINE="${GARONNE_STACK_PIPELINE:-$REPO/deploy/stack/pipeline.toml}"
    HOST_BIN="${GARONNE_HOST_BIN:-$REPO/target/release/host}"
}

save_settings() {
    (
    umask 077
    cat >"$STATE/stack.env" <<EOF
GARONNE_STACK_MQTT_PORT=$MQTT_PORT
GARONNE_STACK_WS_PORT=$WS_PORT
GARONNE_STACK_INFLUX_PORT=$INFLUX_PORT
GARONNE_STACK_INFLUX_RPC_PORT=$INFLUX_RPC_PORT
GARONNE_STACK_WEB_PORT=$WEB_PORT
GARONNE_STACK_GRAFANA_PORT=$GRAFANA_PORT
GARONNE_STACK_GRAFANA=$GRAFANA_MODE
GARONNE_STACK_PIPELINE=$PIPELINE
GARONNE_HOST_BIN=$HOST_BIN
EOF
    )
}

random_secret() {
    od -An -N18 -tx1 /dev/urandom | tr -d ' \n'
}

# Passwords: from the environment, else from STATE/secrets.env, else new ones (kept there).
load_secrets() {
    local file="$STATE/secrets.env" name line
    for name in GARONNE_MQTT_PASSWORD GARONNE_MQTT_READER_PASSWORD GRAFANA_ADMIN_PASSWORD; do
        if [[ -z "${!name:-}" && -f "$file" ]]; then
            line="$(grep -E "^$name=" "$file" | tail -n 1)" || true
            printf -v "$name" '%s' "${line#*=}"
        fi
        if [[ -z "${!name:-}" ]]; then
            printf -v "$name" '%s' "$(random_secret)"
        fi
    done
    (
        umask 077
        printf '%s=%s\n' GARONNE_MQTT_PASSWORD "$GARONNE_MQTT_PASSWORD" \
            GARONNE_MQTT_READER_PASSWORD "$GARONNE_MQTT_READER_PASSWORD" \
            GRAFANA_ADMIN_PASSWORD "$GRAFANA_ADMIN_PASSWORD" >"$file"
    )
}

# --- processes -----------------------------------------------------------------------------------

pid_of() {
    local file="$RUN/$1.pid"
    [[ -f "$file" ]] || return 1
    local pid
    pid="$(<"$file")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    printf '%s' "$pid"
}

# Alive, and not a zombie waiting for its parent.
alive() {
    local pid="$1" state
    [[ -r "/proc/$pid/stat" ]] || return 1
    state="$(sed -E 's/^[0-9]+ \(.*\) ([A-Za-z]).*/\1/' "/proc/$pid/stat" 2>/dev/null)" || return 1
    [[ "$state" != Z && "$state" != X ]]
}

running() {
    local pid
    pid="$(pid_of "$1")" && alive "$pid"
}

# launch NAME COMMAND...: in its own session (no terminal, no stray signals), stdin closed,
# stdout and stderr appended to STATE/logs/NAME.log; the pid goes to STATE/run/NAME.pid.
launch() {
    local name="$1"
    shift
    printf '\n=== %s: %s\n' "$(date -u +%FT%TZ)" "$*" >>"$LOGS/$name.log"
    setsid "$@" </dev/null >>"$LOGS/$name.log" 2>&1 &
    echo $! >"$RUN/$name.pid"
}

port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# wait_for NAME SECONDS CHECK...: until CHECK succeeds, failing if the process died or time ran out.
wait_for() {
    local name="$1" seconds="$2"
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@"; do
        if ! running "$name"; then
            tail -n 30 "$LOGS/$name.log" >&2 || true
            die "$name stopped while starting (log: $LOGS/$name.log)"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 30 "$LOGS/$name.log" >&2 || true
            die "$name is not ready after ${seconds}s (log: $LOGS/$name.log)"
        fi
        sleep 0.2
    done
}

# stop_service NAME SECONDS [SIGNAL]: the signal (TERM), then KILL after SECONDS.
stop_service() {
    local name="$1" seconds="$2" signal="${3:-TERM}" pid
    if ! pid="$(pid_of "$name")"; then
        return 0
    fi
    if alive "$pid"; then
        say "stopping $name (pid $pid)"
        kill "-$signal" "$pid" 2>/dev/null || true
        local deadline=$((SECONDS + seconds))
        while alive "$pid" && ((SECONDS < deadline)); do
            sleep 0.2
        done
        if alive "$pid"; then
            say "$name did not stop within ${seconds}s: killing it"
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
        fi
    fi
    # What the service started in its session (nginx's workers) goes with it.
    if pgrep -s "$pid" >/dev/null 2>&1; then
        kill -TERM -- "-$pid" 2>/dev/null || true
        sleep 0.5
        kill -KILL -- "-$pid" 2>/dev/null || true
    fi
    rm -f "$RUN/$name.pid"
}

# readable_by USER PATH: USER exists and may read PATH (every folder above it included).
readable_by() {
    id "$1" >/dev/null 2>&1 && runuser -u "$1" -- test -r "$2" 2>/dev/null
}

http_ok() {
    curl -fsS -o /dev/null --max-time 5 "$1" 2>/dev/null
}

# --- services ------------------------------------------------------------------------------------

find_binary() {
    local candidate
    for candidate in "$@"; do
        if command -v "$candidate" >/dev/null 2>&1; then
            command -v "$candidate"
            return 0
        elif [[ -x "$candidate" ]]; then
            printf '%s' "$candidate"
            return 0
        fi
    done
    return 1
}

start_influxdb() {
    local dir="$STATE/influxdb"
    mkdir -p "$dir"
    cat >"$dir/influxdb.conf" <<EOF
# Written by deploy/stack/run.sh: InfluxDB 1.x on 127.0.0.1, data in this folder.
reporting-disabled = true
bind-address = "127.0.0.1:$INFLUX_RPC_PORT"
[meta]
  dir = "$dir/meta"
[data]
  dir = "$dir/data"
  wal-dir = "$dir/wal"
  query-log-enabled = false
[http]
  bind-address = "127.0.0.1:$INFLUX_PORT"
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
EOF
    launch influxdb "$(find_binary influxd)" -config "$dir/influxdb.conf"
    wait_for influxdb 60 http_ok "http://127.0.0.1:$INFLUX_PORT/ping"
    curl -fsS -o /dev/null --max-time 10 -XPOST "http://127.0.0.1:$INFLUX_PORT/query" \
        --data-urlencode "q=CREATE DATABASE garonne" || die "cannot create the database garonne"
    say "InfluxDB 1.x on http://127.0.0.1:$INFLUX_PORT (database garonne)"
}

start_mosquitto() {
    local dir="$STATE/mosquitto"
    mkdir -p "$dir/data"
    cp "$REPO/deploy/mosquitto/acl-tcp" "$REPO/deploy/mosquitto/acl-ws" "$dir/"
    rm -f "$dir/passwd"
    touch "$dir/passwd"
    chmod 600 "$dir/passwd"
    mosquitto_passwd -b "$dir/passwd" garonne-host "$GARONNE_MQTT_PASSWORD"
    mosquitto_passwd -b "$dir/passwd" garonne-reader "$GARONNE_MQTT_READER_PASSWORD"
    # The repository's template, with persistence on and whole batches for the historian
    # (README, "The historian").
    local broker="persistence true\npersistence_location $dir/data/\nautosave_interval 60\nmax_inflight_messages 1000\nmax_queued_messages 1000000"
    sed -e 's|@BIND@|127.0.0.1|g' -e "s|@TCP_PORT@|$MQTT_PORT|g" -e "s|@WS_PORT@|$WS_PORT|g" \
        -e "s|@CONF_DIR@|$dir|g" "$REPO/deploy/mosquitto/mosquitto.conf" |
        awk -v broker="$broker" '$0 == "persistence false" { print broker; next } { print }' >"$dir/mosquitto.conf"
    grep -q '^persistence true$' "$dir/mosquitto.conf" ||
        die "deploy/mosquitto/mosquitto.conf no longer says 'persistence false': update $0"
    # Started as root, Mosquitto drops to the `mosquitto` user: it must read the configuration
    # and write its data. A private folder above the state folder (root's home) forbids that:
    # then it stays root.
    if [[ "$(id -u)" == 0 ]]; then
        if id mosquitto >/dev/null 2>&1; then
            chgrp mosquitto "$dir/passwd" "$dir"/acl-* "$dir/mosquitto.conf"
            chmod 640 "$dir/passwd" "$dir"/acl-* "$dir/mosquitto.conf"
            chown mosquitto "$dir/data"
        fi
        if ! readable_by mosquitto "$dir/passwd"; then
            say "warning: the mosquitto user cannot read $dir (a folder above it is private): Mosquitto runs as root"
            sed -i '1i user root' "$dir/mosquitto.conf"
        fi
    fi
    launch mosquitto "$(find_binary mosquitto /usr/sbin/mosquitto)" -c "$dir/mosquitto.conf"
    wait_for mosquitto 30 port_open "$MQTT_PORT"
    wait_for mosquitto 30 port_open "$WS_PORT"
    say "Mosquitto on mqtt://127.0.0.1:$MQTT_PORT (garonne-host, garonne-reader) and ws://127.0.0.1:$WS_PORT (read-only)"
}

start_nginx() {
    local dir="$STATE/nginx"
    mkdir -p "$dir"
    if [[ ! -f "$REPO/web/public/vendor/leaflet/leaflet.js" ]]; then
        say "warning: the map's libraries are missing: run \`cd web && npm ci\` (the page loads without its map)"
    fi
    sed -e 's|@ADDR@|127.0.0.1|g' -e "s|@PORT@|$WEB_PORT|g" -e "s|@ROOT@|$REPO/web/public|g" \
        -e "s|@MQTT_WS@|127.0.0.1:$WS_PORT|g" -e 's|@TILES_ORIGIN@||g' -e 's|@CONNECT_SRC@||g' \
        "$REPO/deploy/nginx/nginx.conf" >"$dir/nginx.conf"
    # Started as root, nginx's workers run as `nobody`, who must read web/public (and every
    # folder above it). If a folder above is private (root's home), the workers stay root.
    if [[ "$(id -u)" == 0 ]] && ! readable_by nobody "$REPO/web/public/index.html"; then
        say "warning: the user nobody cannot read $REPO/web/public (a folder above it is private): nginx's workers run as root"
        sed -i '1i user root;' "$dir/nginx.conf"
    fi
    local nginx
    nginx="$(find_binary nginx /usr/sbin/nginx)"
    "$nginx" -p "$dir" -c nginx.conf -e stderr -t >>"$LOGS/nginx.log" 2>&1 ||
        die "nginx refuses its configuration (log: $LOGS/nginx.log)"
    launch nginx "$nginx" -p "$dir" -c nginx.conf -e stderr
    wait_for nginx 30 http_ok "http://127.0.0.1:$WEB_PORT/"
    say "the live map on http://127.0.0.1:$WEB_PORT/ (nginx; MQTT over WebSocket at /mqtt)"
}

grafana_binary() {
    if command -v grafana-server >/dev/null 2>&1; then
        echo "grafana-server"
    elif command -v grafana >/dev/null 2>&1; then
        echo "grafana server"
    else
        return 1
    fi
}

start_grafana() {
    local command
    if [[ "$GRAFANA_MODE" == off ]]; then
        return 0
    elif ! command="$(grafana_binary)"; then
        [[ "$GRAFANA_MODE" == on ]] && die "Grafana is not installed (it is not in Debian: see grafana.com's packages)"
        say "Grafana is not installed (it is not in Debian): skipped; the dashboards are in grafana/"
        return 0
    fi
    local dir="$STATE/grafana"
    local home="${GRAFANA_HOME:-/usr/share/grafana}"
    mkdir -p "$dir/data" "$dir/logs" "$dir/plugins"
    # Grafana reads grafana/provisioning, which takes these from the environment.
    # shellcheck disable=SC2086
    GF_PATHS_DATA="$dir/data" GF_PATHS_LOGS="$dir/logs" GF_PATHS_PLUGINS="$dir/plugins" \
        GF_PATHS_PROVISIONING="$REPO/grafana/provisioning" \
        GF_SERVER_HTTP_ADDR=127.0.0.1 GF_SERVER_HTTP_PORT="$GRAFANA_PORT" \
        GF_SECURITY_ADMIN_USER=admin GF_SECURITY_ADMIN_PASSWORD="$GRAFANA_ADMIN_PASSWORD" \
        GF_USERS_ALLOW_SIGN_UP=false GF_ANALYTICS_REPORTING_ENABLED=false \
        GF_ANALYTICS_CHECK_FOR_UPDATES=false GF_NEWS_NEWS_FEED_ENABLED=false \
        GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH="$REPO/grafana/dashboards/garonne-quartiers.json" \
        GARONNE_GRAFANA_INFLUX_URL="http://127.0.0.1:$INFLUX_PORT" \
        GARONNE_GRAFANA_INFLUX_DATABASE=garonne \
        GARONNE_GRAFANA_INFLUX_USERNAME=grafana \
        GARONNE_GRAFANA_INFLUX_PASSWORD=unused-without-authentication \
        GARONNE_GRAFANA_DASHBOARDS="$REPO/grafana/dashboards" \
        launch grafana $command --homepath "$home"
    wait_for grafana 90 http_ok "http://127.0.0.1:$GRAFANA_PORT/api/health"
    say "Grafana on http://127.0.0.1:$GRAFANA_PORT/ (admin; password in $STATE/secrets.env)"
}

ensure_built() {
    if [[ -z "${GARONNE_HOST_BIN:-}" && ! -x "$HOST_BIN" ]]; then
        say "building the host (cargo build --release --bin host; the first build takes a while)"
        (cd "$REPO" && cargo build --release --bin host)
    fi
    [[ -x "$HOST_BIN" ]] || die "no host binary at $HOST_BIN (GARONNE_HOST_BIN)"
    if [[ ! -f "$REPO/plugins/target/wasm32-wasip2/release/weather.wasm" ]]; then
        say "building the plugins (cargo xtask build-plugins)"
        (cd "$REPO" && cargo xtask build-plugins)
    fi
}

# The host's retained status on the broker says "online" (read as the read-only user).
host_online() {
    local out="$RUN/host-status.jsonl" online=1
    if GARONNE_MQTT_USERNAME=garonne-reader GARONNE_MQTT_PASSWORD="$GARONNE_MQTT_READER_PASSWORD" \
        "$HOST_BIN" record --mqtt "mqtt://127.0.0.1:$MQTT_PORT" --topic garonne/status/garonne-host \
        --count 1 --duration 2 --out "$out" >/dev/null 2>&1 && grep -q '"state":"online"' "$out"; then
        online=0
    fi
    rm -f "$out"
    return "$online"
}

start_host() {
    mkdir -p "$STATE/host"
    GARONNE_MQTT_URL="mqtt://127.0.0.1:$MQTT_PORT" \
        GARONNE_MQTT_USERNAME=garonne-host GARONNE_MQTT_PASSWORD="$GARONNE_MQTT_PASSWORD" \
        GARONNE_INFLUX_URL="http://127.0.0.1:$INFLUX_PORT" \
        XDG_STATE_HOME="$STATE/host" \
        launch host "$HOST_BIN" run --config "$PIPELINE" --state-dir "$STATE/host/processors"
    # Online once every plugin is compiled and loaded (long the first time: no cache yet).
    wait_for host 300 host_online
    say "the host runs $PIPELINE (log: $LOGS/host.log)"
}

# --- commands ------------------------------------------------------------------------------------

check_ports() {
    local name port busy=()
    for name in MQTT_PORT WS_PORT INFLUX_PORT INFLUX_RPC_PORT WEB_PORT GRAFANA_PORT; do
        port="${!name}"
        [[ "$name" == GRAFANA_PORT && "$GRAFANA_MODE" == off ]] && continue
        port_open "$port" && busy+=("$port (GARONNE_STACK_$name)")
    done
    ((${#busy[@]} == 0)) || die "ports already in use on 127.0.0.1: ${busy[*]}; choose others"
}

cmd_start() {
    load_settings
    local name
    for name in "${SERVICES[@]}"; do
        running "$name" && die "the stack already runs ($name, pid $(pid_of "$name")): \`$0 stop\` first"
    done
    command -v curl >/dev/null || die "curl is missing: apt-get install curl"
    find_binary influxd >/dev/null || die "influxd is missing: apt-get install influxdb"
    find_binary mosquitto /usr/sbin/mosquitto >/dev/null || die "mosquitto is missing: apt-get install mosquitto"
    command -v mosquitto_passwd >/dev/null || die "mosquitto_passwd is missing: apt-get install mosquitto"
    find_binary nginx /usr/sbin/nginx >/dev/null || die "nginx is missing: apt-get install nginx"
    [[ -f "$PIPELINE" ]] || die "no pipeline file $PIPELINE"
    check_ports
    mkdir -p "$STATE" "$RUN" "$LOGS"
    ensure_built
    save_settings
    load_secrets
    # Anything that fails from here stops what started.
    trap 'say "start failed: stopping what started" >&2; stop_all >&2' EXIT
    start_influxdb
    start_mosquitto
    start_nginx
    start_grafana
    start_host
    trap - EXIT
    say "started; \`$0 status\` shows it, \`$0 stop\` stops it (state: $STATE)"
}

stop_all() {
    trap - EXIT
    # The host first: its historian writes what it holds to InfluxDB before that stops.
    stop_service host 60 TERM
    stop_service grafana 20 TERM
    stop_service nginx 15 QUIT
    stop_service mosquitto 15 TERM
    stop_service influxdb 30 TERM
}

cmd_stop() {
    load_settings
    [[ -d "$RUN" ]] || { say "nothing runs (no $RUN)"; return 0; }
    stop_all
    local name left=0
    for name in "${SERVICES[@]}"; do
        if running "$name"; then
            say "$name is still running"
            left=1
        fi
    done
    ((left == 0)) || die "some services did not stop"
    say "stopped"
}

cmd_status() {
    load_settings
    local name pid state missing=0 expected
    for name in "${SERVICES[@]}"; do
        expected=1
        if [[ "$name" == grafana ]] && { [[ "$GRAFANA_MODE" == off ]] || ! grafana_binary >/dev/null; }; then
            expected=0
        fi
        if pid="$(pid_of "$name")" && alive "$pid"; then
            state="running (pid $pid)"
        elif ((expected)); then
            state="stopped"
            missing=1
        else
            state="not installed or off"
        fi
        printf '%-10s %s\n' "$name" "$state"
    done
    printf '\nmap      http://127.0.0.1:%s/\n' "$WEB_PORT"
    if running grafana; then
        printf 'Grafana  http://127.0.0.1:%s/ (admin; password in %s/secrets.env)\n' "$GRAFANA_PORT" "$STATE"
    fi
    printf 'InfluxDB http://127.0.0.1:%s/ (database garonne)\nMQTT     mqtt://127.0.0.1:%s, ws://127.0.0.1:%s\nstate    %s\n' \
        "$INFLUX_PORT" "$MQTT_PORT" "$WS_PORT" "$STATE"
    return "$missing"
}

cmd_logs() {
    local name names=("$@")
    ((${#names[@]} > 0)) || names=("${SERVICES[@]}")
    for name in "${names[@]}"; do
        [[ -f "$LOGS/$name.log" ]] || continue
        printf '==> %s <==\n' "$LOGS/$name.log"
        tail -n 20 "$LOGS/$name.log"
    done
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    logs) shift; cmd_logs "$@" ;;
    *)
        echo "usage: $0 start | stop | status | logs [SERVICE...]" >&2
        exit 2
        ;;
esac
