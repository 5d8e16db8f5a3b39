#!/bin/sh
# Starts nginx in the `web` image of the Dockerfile (nginx:1.27-alpine, with web/public in
# /usr/share/garonne/web) from the repository's template deploy/nginx/nginx.conf, filled for a
# container: listen on 0.0.0.0:8080, proxy /mqtt to Mosquitto's WebSocket listener.
set -eu

prefix=/tmp/nginx
mkdir -p "$prefix"
sed -e 's|@ADDR@|0.0.0.0|g' \
    -e "s|@PORT@|${GARONNE_WEB_LISTEN_PORT:-8080}|g" \
    -e 's|@ROOT@|/usr/share/garonne/web|g' \
    -e "s|@MQTT_WS@|${GARONNE_MQTT_WS:-mosquitto:9001}|g" \
    -e "s|@TILES_ORIGIN@|${GARONNE_TILES_ORIGIN:-}|g" \
    -e "s|@CONNECT_SRC@|${GARONNE_CONNECT_SRC:-}|g" \
    /etc/garonne/nginx.conf.template >"$prefix/nginx.conf"
# Requests to the container's log (the template writes access.log in the prefix).
ln -sf /dev/stdout "$prefix/access.log"
nginx -p "$prefix" -c nginx.conf -e stderr -t
exec nginx -p "$prefix" -c nginx.conf -e stderr
