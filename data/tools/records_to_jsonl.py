#!/usr/bin/env python3
"""Turns real records of a Toulouse Métropole weather station (ODS API format, data/source/)
into Garonne readings, one JSON object per line, for plugin tests.

Usage: python3 data/tools/records_to_jsonl.py FROM TO > readings.jsonl
(FROM and TO are UTC times such as 2025-11-25T07:00, inclusive.)
"""
import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
RECORDS = ROOT / "data/source/station-meteo-42-compans-cafarelli-records-2025-11.json"
STATION = "42-station-meteo-toulouse-parc-compans-cafarelli"
# field of the source -> (kind, unit), in the units of the source data
FIELDS = {"temperature_en_degre_c": ("temperature", "°C"), "humidite": ("humidity", "%"), "pression": ("pressure", "Pa")}


def main():
    start, end = sys.argv[1], sys.argv[2]
    stations = {s["id"]: s for s in json.loads((ROOT / "data/stations/meteo.json").read_text())}
    station = stations[STATION]
    records = sorted(json.loads(RECORDS.read_text()), key=lambda r: r["heure_utc"])
    for record in records:
        time = record["heure_utc"][:16]
        if not start <= time <= end:
            continue
        for field, (kind, unit) in FIELDS.items():
            print(json.dumps({
                "sensor_id": STATION, "kind": kind, "value": record[field], "unit": unit,
                "ts": time + ":00Z", "lat": station["lat"], "lon": station["lon"],
            }, ensure_ascii=False))


if __name__ == "__main__":
    main()
