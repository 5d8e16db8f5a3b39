#!/usr/bin/env python3
"""Turns the open-data files in data/source/ into the station files the host reads.

Run from the repository root: `python3 data/prepare.py`. The output is committed, so nothing
runs this at build or run time; it documents how each derived file was made.

Output format (data/stations/*.json): a JSON array of
{"id", "name", "lat", "lon", "altitude"?, "attributes": {...}}.
"""
import csv
import hashlib
import json
import pathlib
import re

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


# The Atmo Occitanie stations of the Toulouse area (Toulouse and Blagnac, Toulouse Métropole).
AIR_STATIONS = ["FR50004", "FR50021", "FR50030", "FR50039", "FR50040", "FR50043", "FR50044",
                "FR50048", "FR50054", "FR50058", "FR50821"]
# The pollutants the air_quality model simulates, as named in the source (`nom_poll`), and the
# suffix of their attributes.
POLLUTANTS = {"NO2": "no2", "PM10": "pm10", "PM2.5": "pm2_5", "O3": "o3"}


def atmo_rows(source):
    """The validated rows (`statut_valid` = t) of an Atmo Occitanie CSV, each (station, pollutant,
    start date) once: a repeated line is dropped, two different values for one key are an error."""
    rows = {}
    with open(DATA / "source" / source, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if row["statut_valid"] != "t" or row["code_station"] not in AIR_STATIONS:
                continue
            key = (row["code_station"], row["nom_poll"], row["date_debut"])
            if key in rows and rows[key]["valeur"] != row["valeur"]:
                raise ValueError(f"{source}: two values for {key}")
            rows[key] = row
    return sorted(rows.values(), key=lambda r: (r["code_station"], r["nom_poll"], r["date_debut"]))


def number(text):
    """"17.60" -> 17.6, "16" -> 16: the source's digits, as a JSON number."""
    value = float(text)
    return int(value) if value.is_integer() else value


def air_stations():
    """Atmo Occitanie air-quality stations of the Toulouse area, with the annual mean of each
    simulated pollutant (latest validated year) and its validated monthly means (2018-02 to
    2018-12; January is missing from the source) as `monthly_<p>` = "2018-02:24.5,2018-03:18.1"."""
    annual = atmo_rows("atmo-occitanie-mesures-annuelles-polluants.csv")
    monthly = atmo_rows("atmo-occitanie-mesures-mensuelles-polluants-2018.csv")
    stations = {}
    for row in annual + monthly:
        code = row["code_station"]
        if code not in stations:
            stations[code] = {
                "id": code,
                "name": row["nom_station"].strip(),
                "lat": float(row["Y"]),
                "lon": float(row["X"]),
                "attributes": {
                    "influence": row["influence"],
                    "typologie": row["typologie"],
                    "commune": row["nom_com"].title(),
                },
            }
    for code, station in stations.items():
        attributes = station["attributes"]
        measured = [p for p in POLLUTANTS
                    if any(r["code_station"] == code and r["nom_poll"] == p for r in annual + monthly)]
        attributes["pollutants"] = ",".join(measured)
        years = set()
        for pollutant in measured:
            suffix = POLLUTANTS[pollutant]
            rows = [r for r in annual if r["code_station"] == code and r["nom_poll"] == pollutant]
            if rows:
                latest = max(rows, key=lambda r: r["date_debut"])
                years.add(latest["date_debut"][:4])
                attributes[f"mean_{suffix}"] = number(latest["valeur"])
            months = [r for r in monthly if r["code_station"] == code and r["nom_poll"] == pollutant]
            if months:
                attributes[f"monthly_{suffix}"] = ",".join(
                    f"{r['date_debut'][:7]}:{number(r['valeur'])}" for r in months)
        if len(years) != 1:
            raise ValueError(f"{code}: annual means of several years {years}: give each its year")
        attributes["mean_year"] = int(years.pop())
        attributes["source"] = "Atmo Occitanie, mesures annuelles et mensuelles des polluants principaux (ODbL)"
    return [stations[code] for code in sorted(stations)]


def bike_capacity(number):
    """A made-up but stable capacity of 15 to 40 docks: the static list has none."""
    digest = hashlib.sha256(f"velo-{number}".encode()).digest()
    return 15 + digest[0] % 26


def bike_stations():
    """The 279 Vélô Toulouse stations of JCDecaux's static list, with a synthetic capacity."""
    source = json.loads((DATA / "source/velo-toulouse-stations-jcdecaux-2017.json").read_text())
    stations = []
    for record in sorted(source, key=lambda r: r["number"]):
        # "00055 - ST SERNIN G. ARNOULT" -> "ST SERNIN G. ARNOULT" (some prefixes lack the zeros).
        name = re.sub(r"^\d+ -\s+", "", record["name"])
        stations.append({
            "id": f"velo-{record['number']}",
            "name": name,
            "lat": record["latitude"],
            "lon": record["longitude"],
            "attributes": {
                "number": record["number"],
                "address": record["address"],
                "capacity": bike_capacity(record["number"]),
                "source": "JCDecaux, Vélô Toulouse static station list 2017 (Licence Ouverte); capacity synthetic",
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
    for name, stations in [("meteo", weather_stations()), ("air", air_stations()), ("bikes", bike_stations())]:
        out = DATA / f"stations/{name}.json"
        out.write_text(json.dumps(stations, ensure_ascii=False, indent=1) + "\n")
        print(f"wrote {out}")
    (DATA / "geo").mkdir(exist_ok=True)
    for name, (source, id_of, name_of) in POLYGON_SETS.items():
        out = DATA / "geo" / f"{name}.geojson"
        out.write_text(json.dumps(polygons(source, id_of, name_of), ensure_ascii=False, separators=(",", ":")) + "\n")
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
