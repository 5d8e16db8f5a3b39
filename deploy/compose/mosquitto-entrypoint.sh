#!/bin/sh
# Starts Mosquitto in the eclipse-mosquitto:2 container of docker-compose.yml from the
# repository's own configuration (deploy/mosquitto/, mounted read-only on /garonne/mosquitto):
# the template is filled for a container (both listeners on 0.0.0.0, TCP 1883, WebSocket 9001),
# the password file is made from the environment, and persistence is turned on, so that what
# the historian has not acknowledged survives a restart of the broker.
set -eu

: "${GARONNE_MQTT_PASSWORD:?set GARONNE_MQTT_PASSWORD (password of the host user) in .env}"
: "${GARONNE_MQTT_READER_PASSWORD:?set GARONNE_MQTT_READER_PASSWORD (the read-only user) in .env}"

template=/garonne/mosquitto
conf=/mosquitto/garonne
mkdir -p "$conf" /mosquitto/data
cp "$template/acl-tcp" "$template/acl-ws" "$conf/"

# The password file, hashed by mosquitto_passwd; readable by the broker's user only.
rm -f "$conf/passwd"
mosquitto_passwd -c -b "$conf/passwd" garonne-host "$GARONNE_MQTT_PASSWORD"
mosquitto_passwd -b "$conf/passwd" garonne-reader "$GARONNE_MQTT_READER_PASSWORD"

# The template says `persistence false` (fine for the map alone); the historian wants the
# broker to keep its session and queued messages across restarts, and to send it whole batches
# (README, "The historian": max_inflight_messages 1000 or more).
broker='persistence true\npersistence_location /mosquitto/data/\nautosave_interval 60\nmax_inflight_messages 1000\nmax_queued_messages 1000000'
sed -e 's|@BIND@|0.0.0.0|g' -e 's|@TCP_PORT@|1883|g' -e 's|@WS_PORT@|9001|g' -e "s|@CONF_DIR@|$conf|g" \
    "$template/mosquitto.conf" |
    awk -v broker="$broker" '$0 == "persistence false" { print broker; next } { print }' >"$conf/mosquitto.conf"
grep -q '^persistence true$' "$conf/mosquitto.conf" || {
    echo "mosquitto-entrypoint: deploy/mosquitto/mosquitto.conf no longer says 'persistence false'" >&2
    exit 1
}

# Started as root, Mosquitto drops to its own user, which must read the configuration and own
# the data folder.
chown -R root:mosquitto "$conf"
chmod 0750 "$conf"
chmod 0640 "$conf"/*
chown -R mosquitto:mosquitto /mosquitto/data

exec mosquitto -c "$conf/mosquitto.conf"
