//! Which quartier a point is in: polygons from GeoJSON, candidates from an R-tree of their
//! bounding boxes, then an exact point-in-polygon test.

use geo::{BoundingRect, Centroid, Contains, MultiPolygon, Point};
use rstar::RTree;
use rstar::primitives::{GeomWithData, Rectangle};

/// One area of a polygon set: a quartier, a grand quartier or a commune.
pub struct Quartier {
    pub id: String,
    pub name: String,
    pub centroid: Option<(f64, f64)>,
    shape: MultiPolygon<f64>,
}

/// The polygons of a set, indexed for point look-ups.
pub struct QuartierIndex {
    quartiers: Vec<Quartier>,
    boxes: RTree<GeomWithData<Rectangle<[f64; 2]>, usize>>,
}

impl QuartierIndex {
    /// Reads a FeatureCollection whose features have `id` and `name` properties and a Polygon or
    /// MultiPolygon geometry (the format of `data/geo/`).
    pub fn from_geojson(text: &str) -> Result<Self, String> {
        let collection: geojson::FeatureCollection = text
            .parse::<geojson::GeoJson>()
            .map_err(|e| format!("invalid GeoJSON: {e}"))?
            .try_into()
            .map_err(|e| format!("not a FeatureCollection: {e}"))?;
        let mut quartiers = Vec::with_capacity(collection.features.len());
        for (n, feature) in collection.features.into_iter().enumerate() {
            let text_property = |key: &str| -> Result<String, String> {
                match feature.property(key) {
                    Some(serde_json::Value::String(s)) => Ok(s.clone()),
                    Some(other) => Ok(other.to_string()),
                    None => Err(format!("feature {n} has no `{key}` property")),
                }
            };
            let (id, name) = (text_property("id")?, text_property("name")?);
            let geometry = feature.geometry.ok_or_else(|| format!("feature {id} has no geometry"))?;
            let shape = match geo::Geometry::<f64>::try_from(geometry) {
                Ok(geo::Geometry::Polygon(p)) => MultiPolygon(vec![p]),
                Ok(geo::Geometry::MultiPolygon(m)) => m,
                _ => return Err(format!("feature {id} is not a polygon")),
            };
            let centroid = shape.centroid().map(|c| (c.y(), c.x()));
            quartiers.push(Quartier { id, name, centroid, shape });
        }
        let boxes = quartiers
            .iter()
            .enumerate()
            .filter_map(|(i, q)| {
                let rect = q.shape.bounding_rect()?;
                let (min, max) = (rect.min(), rect.max());
                Some(GeomWithData::new(Rectangle::from_corners([min.x, min.y], [max.x, max.y]), i))
            })
            .collect();
        Ok(Self { quartiers, boxes: RTree::bulk_load(boxes) })
    }

    pub fn quartiers(&self) -> &[Quartier] {
        &self.quartiers
    }

    /// The index of the quartier that contains the point, if any (a point exactly on a border
    /// belongs to none: borders are rare and this keeps the answer unique).
    pub fn locate(&self, lat: f64, lon: f64) -> Option<usize> {
        let point = Point::new(lon, lat);
        self.boxes
            .locate_all_at_point(&[lon, lat])
            .map(|candidate| candidate.data)
            .find(|&i| self.quartiers[i].shape.contains(&point))
    }

    /// The same answer by testing every polygon: the baseline of the index's benchmark.
    pub fn locate_linear(&self, lat: f64, lon: f64) -> Option<usize> {
        let point = Point::new(lon, lat);
        self.quartiers.iter().position(|q| q.shape.contains(&point))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SQUARES: &str = r#"{"type":"FeatureCollection","features":[
        {"type":"Feature","properties":{"id":"1","name":"West"},
         "geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,1],[0,0]]]}},
        {"type":"Feature","properties":{"id":2,"name":"East"},
         "geometry":{"type":"MultiPolygon","coordinates":[[[[1,0],[2,0],[2,1],[1,1],[1,0]]]]}}]}"#;

    #[test]
    fn points_fall_in_the_polygon_that_contains_them_or_in_none() {
        let index = QuartierIndex::from_geojson(SQUARES).expect("valid polygons");
        assert_eq!(index.locate(0.5, 0.5), Some(0));
        assert_eq!(index.locate(0.5, 1.5), Some(1));
        assert_eq!(index.locate(0.5, 2.5), None);
        assert_eq!(index.quartiers()[1].id, "2");
        assert_eq!(index.quartiers()[0].centroid, Some((0.5, 0.5)));
    }

    #[test]
    fn the_index_agrees_with_a_linear_scan() {
        let index = QuartierIndex::from_geojson(SQUARES).expect("valid polygons");
        for i in 0..40 {
            let (lat, lon) = (i as f64 * 0.037, i as f64 * 0.061);
            assert_eq!(index.locate(lat, lon), index.locate_linear(lat, lon), "at {lat},{lon}");
        }
    }

    #[test]
    fn bad_geojson_is_an_error() {
        assert!(QuartierIndex::from_geojson("{}").is_err());
        assert!(
            QuartierIndex::from_geojson(
                r#"{"type":"FeatureCollection","features":[
            {"type":"Feature","properties":{"name":"x"},"geometry":null}]}"#
            )
            .is_err()
        );
    }
}
