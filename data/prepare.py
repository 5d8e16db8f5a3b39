#!/usr/bin/env python3
"""Turns the open-data files in data/source/ into the station files the host reads.

Run from the repository root: `python3 data/prepare.py`. The output is committed, so nothing
runs this at build or run time; it documents how each derived file was made.

Output format (data/stations/*.json): a JSON array of
{"id", "name", "lat", "lon", "altitude"?, "attributes": {...}}.
"""
import json
import pathlib

DATA = pathlib.Path(__file__).resolve().parent


def weather_stations():
    """Toulouse Métropole weather stations (77). `id_numero` is not unique (LIFE sub-stations
    share numbers), so the unique `id_nom` is the id."""
    source = json.loads((DATA / "source/toulouse-metropole-stations-meteo-en-place.json").read_text())
    stations = []
    for record in sorted(source, key=lambda r: r["id_nom"]):
        slug = record["id_nom"]
        words = slug.split("-")
        # "42-station-meteo-toulouse-parc-compans-cafarelli" -> "toulouse parc compans cafarelli"
        name = " ".join(words[3:] if words[1:3] == ["station", "meteo"] else words[1:])
        stations.append({
            "id": slug,
            "name": name,
            "lat": record["latitude"],
            "lon": record["longitude"],
            "altitude": record.get("altitude"),
            "attributes": {
                "number": record["id_numero"],
                "commune": record["ville"],
                "type": record["type_stati"],
                "lcz": record["lcz"],
                "built_m2": record["bati"],
                "high_vegetation_m2": record["veg_haute"],
                "installed": record["installation"],
                "source": "Toulouse Métropole, stations-meteo-en-place (ODbL)",
            },
        })
    return stations


def main():
    out = DATA / "stations/meteo.json"
    out.write_text(json.dumps(weather_stations(), ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
