#!/bin/bash
# Run once by the influxdb:2.7 image, right after it set up the org, the bucket and the admin
# token from the DOCKER_INFLUXDB_INIT_* variables (that is, on an empty influxdb-data volume),
# with the influx CLI already pointed at the server and authenticated.
#
# 1. Maps the v1 database `garonne` (retention policy `autogen`) to the bucket, so that
#    InfluxQL, which Grafana's dashboards speak, reaches it through /query.
# 2. Creates a v1 user for Grafana that may only read the bucket (GARONNE_GRAFANA_INFLUX_USERNAME
#    and GARONNE_GRAFANA_INFLUX_PASSWORD), so that Grafana never holds the admin token.
set -euo pipefail

org="${DOCKER_INFLUXDB_INIT_ORG:?}"
bucket="${DOCKER_INFLUXDB_INIT_BUCKET:?}"
bucket_id="${DOCKER_INFLUXDB_INIT_BUCKET_ID:?}"
database="${GARONNE_INFLUX_DATABASE:-$bucket}"
user="${GARONNE_GRAFANA_INFLUX_USERNAME:?}"
password="${GARONNE_GRAFANA_INFLUX_PASSWORD:?}"

# InfluxDB 2.x may already offer a virtual mapping bucket-name/autogen: keep it if so.
if influx v1 dbrp list --org "$org" --db "$database" --hide-headers 2>/dev/null | grep -qw autogen; then
    echo "garonne-init: the DBRP mapping $database/autogen exists"
else
    influx v1 dbrp create --org "$org" --bucket-id "$bucket_id" --db "$database" --rp autogen --default
fi

# The script runs once, on an empty volume (a failed initialisation is wiped and run again).
influx v1 auth create --org "$org" --username "$user" --password "$password" \
    --read-bucket "$bucket_id" --description "Grafana (read-only, InfluxQL)"
