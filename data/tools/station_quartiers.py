#!/usr/bin/env python3
"""Writes host/tests/fixtures/station-quartiers.csv: which quartier each of the 77 weather
stations stands in, computed independently of the Rust code (plain ray casting, no library),
then checked by hand against the station names and the counts in the data's documentation
(57 stations inside Toulouse's 20 quartiers, 20 in other communes, 15 in quartier 5).

Run from the repository root: python3 data/tools/station_quartiers.py
"""
import csv
import json
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[2]


def inside_ring(lon, lat, ring):
    """Even-odd ray casting towards +lon."""
    inside = False
    for (x1, y1), (x2, y2) in zip(ring, ring[1:] + ring[:1]):
        if (y1 > lat) != (y2 > lat):
            x_cross = x1 + (lat - y1) * (x2 - x1) / (y2 - y1)
            if lon < x_cross:
                inside = not inside
    return inside


def inside_polygon(lon, lat, rings):
    return inside_ring(lon, lat, rings[0]) and not any(inside_ring(lon, lat, hole) for hole in rings[1:])


def polygons_of(geometry):
    if geometry["type"] == "Polygon":
        return [geometry["coordinates"]]
    return geometry["coordinates"]


def main():
    stations = json.loads((ROOT / "data/stations/meteo.json").read_text())
    quartiers = json.loads((ROOT / "data/geo/quartiers.geojson").read_text())["features"]
    rows = []
    for station in stations:
        found = [q["properties"] for q in quartiers
                 if any(inside_polygon(station["lon"], station["lat"], p) for p in polygons_of(q["geometry"]))]
        assert len(found) <= 1, (station["id"], found)
        rows.append((station["id"], found[0]["id"] if found else "", found[0]["name"] if found else ""))
    out = ROOT / "host/tests/fixtures/station-quartiers.csv"
    with out.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["station_id", "quartier_id", "quartier_name"])
        writer.writerows(rows)
    inside = [r for r in rows if r[1]]
    print(f"wrote {out}: {len(inside)} inside a quartier, {len(rows) - len(inside)} outside")


if __name__ == "__main__":
    main()
