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


def rounded(coordinates):
    """Rounds nested coordinate lists to 6 decimals (about 0.1 m): smaller files, same shapes."""
    if isinstance(coordinates, (int, float)):
        return round(coordinates, 6)
    return [rounded(c) for c in coordinates]


def polygons(source, id_of, name_of):
    """A GeoJSON FeatureCollection with only `id` and `name` properties."""
    collection = json.loads((DATA / "source" / source).read_text())
    features = []
    for feature in collection["features"]:
        props = feature["properties"]
        geometry = feature["geometry"]
        features.append({
            "type": "Feature",
            "properties": {"id": str(id_of(props)), "name": name_of(props)},
            "geometry": {"type": geometry["type"], "coordinates": rounded(geometry["coordinates"])},
        })
    features.sort(key=lambda f: (len(f["properties"]["id"]), f["properties"]["id"]))
    return {"type": "FeatureCollection", "features": features}


POLYGON_SETS = {
    # The 20 "quartiers de démocratie locale" of the city of Toulouse (ODbL).
    "quartiers": ("toulouse-quartiers-democratie-locale.geojson",
                  lambda p: p["quartier"], lambda p: p["nom_quartier"]),
    # The 60 INSEE "grands quartiers" of Toulouse, census 2015 (Licence Ouverte).
    "grands-quartiers": ("toulouse-grands-quartiers-rp2015-population.geojson",
                         lambda p: p["grd_quart"], lambda p: p["libelle_des_grands_quartiers"]),
    # The 37 communes of Toulouse Métropole (ODbL).
    "communes": ("toulouse-metropole-communes.geojson",
                 lambda p: p["code_insee"], lambda p: p["libelle"]),
}


def main():
    out = DATA / "stations/meteo.json"
    out.write_text(json.dumps(weather_stations(), ensure_ascii=False, indent=1) + "\n")
    print(f"wrote {out}")
    (DATA / "geo").mkdir(exist_ok=True)
    for name, (source, id_of, name_of) in POLYGON_SETS.items():
        out = DATA / "geo" / f"{name}.geojson"
        out.write_text(json.dumps(polygons(source, id_of, name_of), ensure_ascii=False, separators=(",", ":")) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
