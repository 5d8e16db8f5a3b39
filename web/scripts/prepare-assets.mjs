// Copies what the page needs from node_modules and data/ into public/, so that nginx serves
// everything locally (no CDN at run time). Run by `npm ci`/`npm install` (postinstall) and by
// `npm test`; `npm run prepare-assets` runs it by hand. The copies are gitignored.
import { copyFileSync, mkdirSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const web = join(dirname(fileURLToPath(import.meta.url)), '..');
const pub = join(web, 'public');
const modules = join(web, 'node_modules');
const data = join(web, '..', 'data', 'geo');

const copies = [
  [join(modules, 'leaflet/dist/leaflet.js'), 'vendor/leaflet/leaflet.js'],
  [join(modules, 'leaflet/dist/leaflet.css'), 'vendor/leaflet/leaflet.css'],
  ...['layers.png', 'layers-2x.png', 'marker-icon.png', 'marker-icon-2x.png', 'marker-shadow.png'].map(
    (f) => [join(modules, 'leaflet/dist/images', f), `vendor/leaflet/images/${f}`],
  ),
  [join(modules, 'mqtt/dist/mqtt.min.js'), 'vendor/mqtt/mqtt.min.js'],
  [join(modules, 'leaflet/LICENSE'), 'vendor/leaflet/LICENSE'],
  [join(modules, 'mqtt/LICENSE.md'), 'vendor/mqtt/LICENSE.md'],
];

let missing = 0;
for (const [from, to] of copies) {
  if (!existsSync(from)) {
    console.error(`prepare-assets: missing ${from} (run npm ci in web/)`);
    missing++;
    continue;
  }
  const dest = join(pub, to);
  mkdirSync(dirname(dest), { recursive: true });
  copyFileSync(from, dest);
}

// Douglas-Peucker on one ring, tolerance in degrees (0 keeps every point).
function simplify(ring, tol) {
  if (tol <= 0 || ring.length < 5) return ring;
  const keep = new Uint8Array(ring.length);
  keep[0] = keep[ring.length - 1] = 1;
  const stack = [[0, ring.length - 1]];
  while (stack.length) {
    const [a, b] = stack.pop();
    const [ax, ay] = ring[a];
    const [bx, by] = ring[b];
    const dx = bx - ax;
    const dy = by - ay;
    const len = Math.hypot(dx, dy);
    let worst = -1;
    let far = 0;
    for (let i = a + 1; i < b; i++) {
      // Distance to the segment's line, or to its start when it is closed (a ring's ends).
      const d = len > 1e-12
        ? Math.abs(dy * (ring[i][0] - ax) - dx * (ring[i][1] - ay)) / len
        : Math.hypot(ring[i][0] - ax, ring[i][1] - ay);
      if (d > far) [far, worst] = [d, i];
    }
    if (worst > 0 && far > tol) {
      keep[worst] = 1;
      stack.push([a, worst], [worst, b]);
    }
  }
  const out = ring.filter((_, i) => keep[i]);
  return out.length >= 4 ? out : ring;
}

// The outlines: quartiers (coloured by the live averages, kept exact) and communes (faint
// context, simplified to about 20 m). Coordinates are rounded to 5 decimals (about 1 m).
for (const [name, tol] of [['quartiers', 0], ['communes', 0.0002]]) {
  const from = join(data, `${name}.geojson`);
  if (!existsSync(from)) {
    console.error(`prepare-assets: missing ${from}`);
    missing++;
    continue;
  }
  const geo = JSON.parse(readFileSync(from, 'utf8'));
  const round = (c) => (typeof c[0] === 'number' ? c.map((x) => Math.round(x * 1e5) / 1e5) : c.map(round));
  // Rings are the arrays whose items are points.
  const rings = (c) => (typeof c[0][0] === 'number' ? simplify(c, tol) : c.map(rings));
  for (const f of geo.features) if (f.geometry) f.geometry.coordinates = rings(round(f.geometry.coordinates));
  const dest = join(pub, 'geo', `${name}.geojson`);
  mkdirSync(dirname(dest), { recursive: true });
  writeFileSync(dest, JSON.stringify(geo));
}

if (missing) process.exit(1);
console.log(`prepare-assets: vendor files and outlines copied to ${pub}`);
