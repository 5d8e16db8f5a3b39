// Garonne live map: Toulouse's quartiers coloured by the live per-quartier averages, the
// stations with their latest values, and the active alerts, over MQTT-over-WebSocket.
//
// No build step: Leaflet (window.L) and mqtt.js (window.mqtt) are loaded by index.html from
// vendor/, copied there from node_modules by scripts/prepare-assets.mjs.
//
// Config, in order of precedence: the page URL (?mqtt=ws://…, ?kind=no2, ?theme=light), then
// config.json beside index.html (mqtt_url, topic_prefix, tiles_url, tiles_attribution, theme,
// mqtt_version, mqtt_username, mqtt_password), then the defaults: ws(s)://<page host>/mqtt,
// prefix "toulouse", MQTT 3.1.1, no tiles (the outlines and labels make the map readable
// offline).

const L = window.L;
const mqttLib = window.mqtt;

// --- Measures ----------------------------------------------------------------------------

// Colour ramps, low to high. "air" follows the colours of the French air-quality index (Atmo).
const PALETTES = {
  thermal: ['#2c7bb6', '#00a6ca', '#00ccbc', '#90eb9d', '#ffff8c', '#f9d057', '#f29e2e', '#e76818', '#d7191c'],
  humidity: ['#f3d9a4', '#c7e9c0', '#7fcdbb', '#41b6c4', '#1d91c0', '#225ea8', '#3f3fa8'],
  air: ['#50f0e6', '#50ccaa', '#f0e641', '#ff5050', '#960032', '#872181'],
  viridis: ['#440154', '#46327e', '#365c8d', '#277f8e', '#1fa187', '#4ac16d', '#a0da39', '#fde725'],
};

// Known measures: a label, a ramp, the decimals shown and the smallest span of the colour scale
// (so that 0.1 °C of noise between quartiers does not look like a heat wave).
const KINDS = {
  temperature: { label: 'Temperature', palette: 'thermal', digits: 1, span: 2 },
  humidity: { label: 'Humidity', palette: 'humidity', digits: 0, span: 5 },
  no2: { label: 'NO₂', palette: 'air', digits: 0, span: 10 },
  o3: { label: 'O₃', palette: 'air', digits: 0, span: 10 },
  pm10: { label: 'PM10', palette: 'air', digits: 0, span: 5 },
  pm2_5: { label: 'PM2.5', palette: 'air', digits: 0, span: 5 },
  pm25: { label: 'PM2.5', palette: 'air', digits: 0, span: 5 },
  so2: { label: 'SO₂', palette: 'air', digits: 0, span: 5 },
  bikes_available: { label: 'Bikes available', palette: 'viridis', digits: 1, span: 4 },
  stands_available: { label: 'Free stands', palette: 'viridis', digits: 1, span: 4 },
  pressure: { label: 'Pressure', palette: 'viridis', digits: 0, span: 4 },
  wind_speed: { label: 'Wind speed', palette: 'viridis', digits: 1, span: 2 },
  rain: { label: 'Rain', palette: 'humidity', digits: 1, span: 1 },
};

function kindInfo(kind) {
  const known = KINDS[kind];
  if (known) return known;
  const label = kind.replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase());
  return { label, palette: 'viridis', digits: 1, span: 1 };
}

// --- Small helpers -------------------------------------------------------------------------

const $ = (id) => document.getElementById(id);

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

function fmt(value, kind) {
  if (value === undefined || value === null || Number.isNaN(value)) return '—';
  const digits = kindInfo(kind).digits;
  return value.toLocaleString('en-GB', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

function unitOf(kind) {
  return state.kinds.get(kind)?.unit || '';
}

function withUnit(value, kind) {
  const unit = unitOf(kind);
  return unit ? `${fmt(value, kind)} ${unit}` : fmt(value, kind);
}

// Times are shown in Toulouse's zone, whatever the screen's.
const TIME = new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Paris', hour: '2-digit', minute: '2-digit', second: '2-digit' });
const HM = new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Paris', hour: '2-digit', minute: '2-digit' });
const DAY_HM = new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Paris', weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });

function ago(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return `${Math.floor(s / 3600)} h ago`;
}

function duration(seconds) {
  if (!Number.isFinite(seconds)) return '';
  const m = Math.round(seconds / 60);
  if (m < 60) return `${m} min`;
  const h = Math.floor(m / 60);
  return m % 60 ? `${h} h ${m % 60} min` : `${h} h`;
}

function hexToRgb(hex) {
  const n = parseInt(hex.slice(1), 16);
  return [(n >> 16) & 255, (n >> 8) & 255, n & 255];
}

function rampColor(palette, t) {
  const stops = PALETTES[palette] || PALETTES.viridis;
  const x = Math.min(1, Math.max(0, Number.isFinite(t) ? t : 0.5)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  const a = hexToRgb(stops[i]);
  const b = hexToRgb(stops[i + 1]);
  const c = a.map((v, k) => Math.round(v + (b[k] - v) * f));
  return `#${c.map((v) => v.toString(16).padStart(2, '0')).join('')}`;
}

// A "nice" colour domain covering [min, max], at least `span` wide, with round ticks.
function niceDomain(min, max, span) {
  if (max - min < span) {
    const mid = (min + max) / 2;
    min = mid - span / 2;
    max = mid + span / 2;
  }
  const raw = (max - min) / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || 10 * mag;
  const lo = Math.floor(min / step) * step;
  const hi = Math.ceil(max / step) * step;
  const ticks = [];
  for (let v = lo; v <= hi + step / 2; v += step) ticks.push(Math.round(v / step) * step);
  return { lo, hi, ticks, step };
}

// --- Geometry: where to put a quartier's label ----------------------------------------------

function polygonsOf(geometry) {
  if (!geometry) return [];
  if (geometry.type === 'Polygon') return [geometry.coordinates];
  if (geometry.type === 'MultiPolygon') return geometry.coordinates;
  return [];
}

function ringArea(ring) {
  let a = 0;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) a += ring[j][0] * ring[i][1] - ring[i][0] * ring[j][1];
  return a / 2;
}

function inRing(x, y, ring) {
  let inside = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i];
    const [xj, yj] = ring[j];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) inside = !inside;
  }
  return inside;
}

// The point of the largest polygon farthest from its edges (on a grid): unlike the centroid,
// it is always inside, even for the long, bent quartiers.
function labelPoint(geometry) {
  const polys = polygonsOf(geometry);
  if (!polys.length) return null;
  const poly = polys.reduce((a, b) => (Math.abs(ringArea(b[0])) > Math.abs(ringArea(a[0])) ? b : a));
  const outer = poly[0];
  let [x0, y0, x1, y1] = [Infinity, Infinity, -Infinity, -Infinity];
  for (const [x, y] of outer) [x0, y0, x1, y1] = [Math.min(x0, x), Math.min(y0, y), Math.max(x1, x), Math.max(y1, y)];
  const kx = Math.cos(((y0 + y1) / 2) * (Math.PI / 180));
  const edgeDistance = (x, y) => {
    let best = Infinity;
    for (const ring of poly) {
      for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
        const ax = ring[j][0] * kx;
        const ay = ring[j][1];
        const bx = ring[i][0] * kx;
        const by = ring[i][1];
        const px = x * kx;
        const dx = bx - ax;
        const dy = by - ay;
        const len2 = dx * dx + dy * dy;
        const t = len2 ? Math.max(0, Math.min(1, ((px - ax) * dx + (y - ay) * dy) / len2)) : 0;
        best = Math.min(best, Math.hypot(px - (ax + t * dx), y - (ay + t * dy)));
      }
    }
    return best;
  };
  const inside = (x, y) => inRing(x, y, outer) && !poly.slice(1).some((hole) => inRing(x, y, hole));
  let best = null;
  let bestD = -1;
  const n = 24;
  for (let i = 0; i <= n; i++) {
    for (let j = 0; j <= n; j++) {
      const x = x0 + ((x1 - x0) * (i + 0.5)) / (n + 1);
      const y = y0 + ((y1 - y0) * (j + 0.5)) / (n + 1);
      if (!inside(x, y)) continue;
      const d = edgeDistance(x, y);
      if (d > bestD) [bestD, best] = [d, [y, x]];
    }
  }
  return best || [(y0 + y1) / 2, (x0 + x1) / 2];
}

// Short name for a label: the first place of "Capitole / Arnaud Bernard / Carmes".
function shortName(name) {
  return String(name).split('/')[0].trim();
}

// --- State -----------------------------------------------------------------------------

const HOUR_MS = 3_600_000;
const MAX_POINTS = 720;

const state = {
  config: null,
  prefix: 'toulouse',
  selectedKind: null,
  kinds: new Map(), // kind -> { unit, quartiers: bool, stations: bool }
  kindsDirty: false,
  quartiers: new Map(), // id -> { id, name, short, layer, label, values: Map kind -> {value, ts, fields} }
  stations: new Map(), // id -> { id, name, lat, lon, altitude, marker, latest: Map, history: Map }
  alerts: new Map(), // "kind|sensor_id" -> { kind, sensorId, value, unit, ts, fields, tags, received }
  hosts: new Map(), // instance -> status payload
  connection: 'connecting',
  lastMessageAt: null,
  dataTime: null,
  messages: 0,
  badMessages: 0,
  rate: [], // [wall ms, messages] samples
  dirty: true,
  openStation: null,
};

let map;
let quartierLayer;
let stationLayer;
let alertLayer;
let client;

// --- Config ----------------------------------------------------------------------------

async function loadConfig() {
  let file = {};
  try {
    const res = await fetch('config.json', { cache: 'no-store' });
    if (res.ok && res.status !== 204) {
      const text = await res.text();
      if (text.trim()) file = JSON.parse(text);
    }
  } catch (e) {
    console.warn('config.json unreadable, using the defaults:', e.message);
  }
  const params = new URLSearchParams(location.search);
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  return {
    mqttUrl: params.get('mqtt') || file.mqtt_url || `${scheme}://${location.host}/mqtt`,
    prefix: (params.get('prefix') || file.topic_prefix || 'toulouse').replace(/\/+$/, ''),
    tilesUrl: params.get('tiles') || file.tiles_url || null,
    tilesAttribution: file.tiles_attribution || '',
    theme: params.get('theme') || file.theme || 'dark',
    kind: params.get('kind') || null,
    // MQTT 3.1.1 by default: the host's embedded broker (rumqttd) speaks no MQTT 5 over
    // WebSocket. With 5, a refused publish is reported back to the client.
    mqttVersion: Number(params.get('mqttv') || file.mqtt_version || 4) === 5 ? 5 : 4,
    username: file.mqtt_username || undefined,
    password: file.mqtt_password || undefined,
  };
}

// --- Map -------------------------------------------------------------------------------

const DATA_ATTRIBUTION =
  'Data © <a href="https://data.toulouse-metropole.fr/">Toulouse Métropole</a> (ODbL) · ' +
  '© <a href="https://www.atmo-occitanie.org/">Atmo Occitanie</a> · ' +
  '© JCDecaux / Toulouse Métropole';

async function fetchJson(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res.json();
}

async function setupMap(config) {
  map = L.map('map', { zoomSnap: 0.25, zoomControl: true, attributionControl: true, preferCanvas: false });
  map.attributionControl.setPrefix('<a href="https://leafletjs.com">Leaflet</a>');
  map.attributionControl.addAttribution(DATA_ATTRIBUTION);
  map.createPane('communes').style.zIndex = 350;
  map.createPane('quartiers').style.zIndex = 400;
  map.createPane('stations').style.zIndex = 450;
  // Labels above the stations (they let the clicks through): on a wall screen, values first.
  map.createPane('labels').style.zIndex = 460;
  map.getPane('labels').style.pointerEvents = 'none';

  if (config.tilesUrl) {
    document.body.classList.add('has-tiles');
    L.tileLayer(config.tilesUrl, { attribution: escapeHtml(config.tilesAttribution || 'Map tiles'), maxZoom: 19 }).addTo(map);
  } else {
    document.body.classList.add('no-tiles');
  }

  const [quartiers, communes] = await Promise.all([
    fetchJson('geo/quartiers.geojson'),
    fetchJson('geo/communes.geojson').catch((e) => {
      console.warn('no commune outlines:', e.message);
      return null;
    }),
  ]);

  if (communes) {
    L.geoJSON(communes, {
      pane: 'communes',
      interactive: false,
      style: { color: '#5b6b7e', weight: 1, opacity: 0.55, fill: true, fillColor: '#18222e', fillOpacity: 0.35, className: 'commune' },
    }).addTo(map);
  }

  quartierLayer = L.geoJSON(quartiers, {
    pane: 'quartiers',
    style: { color: '#c9d6e3', weight: 1.6, opacity: 0.9, fillColor: '#263445', fillOpacity: 0.55, className: 'quartier' },
    onEachFeature: (feature, layer) => {
      const id = String(feature.properties.id);
      const name = feature.properties.name || `Quartier ${id}`;
      const area = polygonsOf(feature.geometry).reduce((sum, poly) => sum + Math.abs(ringArea(poly[0])), 0);
      const q = { id, name, short: shortName(name), layer, area, values: new Map(), label: null };
      const at = labelPoint(feature.geometry);
      if (at) {
        const icon = L.divIcon({
          className: 'q-label',
          html: `<div class="q-label-inner"><span class="q-val">—</span><span class="q-name">${escapeHtml(q.short)}</span></div>`,
          iconSize: null,
        });
        q.label = L.marker(at, { icon, pane: 'labels', interactive: false, keyboard: false });
      }
      layer.on('add', () => {
        const el = layer.getElement();
        if (el) el.dataset.quartier = id;
      });
      layer.bindTooltip(() => quartierTooltip(q), { sticky: true, className: 'q-tooltip', direction: 'top', offset: [0, -8] });
      layer.bindPopup(() => quartierPopup(q), { className: 'garonne-popup', maxWidth: 340 });
      state.quartiers.set(id, q);
    },
  }).addTo(map);
  for (const q of state.quartiers.values()) if (q.label) q.label.addTo(map);

  stationLayer = L.layerGroup().addTo(map);
  alertLayer = L.layerGroup().addTo(map);

  const fit = () => map.fitBounds(quartierLayer.getBounds(), { padding: [16, 16] });
  L.control.scale({ imperial: false, position: 'bottomleft' }).addTo(map);
  fit();
  map.on('resize', () => fit());
  const onZoom = () => {
    map.getContainer().classList.toggle('zoomed-out', map.getZoom() < 11.5);
    declutterLabels();
  };
  map.on('zoomend', onZoom);
  onZoom();
  map.on('popupclose', () => {
    state.openStation = null;
  });
}

// Where labels collide (the small central quartiers), the smaller quartier's label keeps its
// value and drops its name; the tooltip and the side list still name it.
function declutterLabels() {
  const items = [...state.quartiers.values()]
    .map((q) => ({ q, el: q.label?.getElement() }))
    .filter((i) => i.el)
    .sort((a, b) => b.q.area - a.q.area);
  for (const i of items) i.el.classList.remove('compact');
  const placed = [];
  const overlaps = (a, b) => a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom;
  for (const i of items) {
    const inner = i.el.firstElementChild;
    let r = inner.getBoundingClientRect();
    if (placed.some((p) => overlaps(p, r))) {
      i.el.classList.add('compact');
      r = inner.getBoundingClientRect();
    }
    placed.push(r);
  }
}

function quartierTooltip(q) {
  const kind = state.selectedKind;
  const v = kind && q.values.get(kind);
  const value = v ? withUnit(v.value, kind) : 'no data yet';
  return `<div class="qt-name">${escapeHtml(q.name)}</div><div class="qt-val">${escapeHtml(kind ? kindInfo(kind).label : '')} ${escapeHtml(value)}</div>`;
}

function quartierPopup(q) {
  const rows = [...q.values.entries()]
    .sort(([a], [b]) => kindInfo(a).label.localeCompare(kindInfo(b).label))
    .map(([kind, v]) => {
      const f = v.fields || {};
      const range = Number.isFinite(f.min) && Number.isFinite(f.max) ? `${fmt(f.min, kind)} – ${fmt(f.max, kind)}` : '';
      const count = Number.isFinite(f.count) ? `${f.count} readings` : '';
      return `<tr><th>${escapeHtml(kindInfo(kind).label)}</th><td class="v">${escapeHtml(withUnit(v.value, kind))}</td><td class="sub">${escapeHtml([range, count].filter(Boolean).join(' · '))}</td></tr>`;
    })
    .join('');
  return `<div class="popup"><div class="p-title">${escapeHtml(q.name)}</div><div class="p-sub">Quartier ${escapeHtml(q.id)} · average over the last window</div>${
    rows ? `<table class="p-values">${rows}</table>` : '<div class="p-sub">No averages yet.</div>'
  }</div>`;
}

// --- Stations ----------------------------------------------------------------------------

function ensureStation(id, lat, lon) {
  let s = state.stations.get(id);
  if (!s) {
    if (!Number.isFinite(lat) || !Number.isFinite(lon)) return null;
    s = { id, name: id, lat, lon, altitude: null, latest: new Map(), history: new Map(), marker: null, meta: null };
    s.marker = L.circleMarker([lat, lon], {
      pane: 'stations',
      radius: 6,
      weight: 1.5,
      color: '#0b1118',
      fillColor: '#8a99a8',
      fillOpacity: 1,
      className: 'station',
    });
    s.marker.bindPopup(() => stationPopup(s), { className: 'garonne-popup', maxWidth: 360, minWidth: 260, autoPanPadding: [24, 24] });
    s.marker.bindTooltip(() => stationTooltip(s), { direction: 'top', offset: [0, -6], className: 'st-tooltip' });
    s.marker.on('popupopen', () => {
      state.openStation = s.id;
    });
    s.marker.on('add', () => {
      const el = s.marker.getElement();
      if (el) el.dataset.station = id;
    });
    s.marker.addTo(stationLayer);
    state.stations.set(id, s);
  } else if (Number.isFinite(lat) && Number.isFinite(lon) && (lat !== s.lat || lon !== s.lon)) {
    s.lat = lat;
    s.lon = lon;
    s.marker.setLatLng([lat, lon]);
  }
  return s;
}

function stationTooltip(s) {
  const kind = state.selectedKind;
  const v = kind && s.latest.get(kind);
  return `<b>${escapeHtml(s.name)}</b>${v ? ` · ${escapeHtml(withUnit(v.value, kind))}` : ''}`;
}

function sparkline(points, kind) {
  const w = 120;
  const h = 30;
  if (!points || !points.length) return '';
  const t0 = points[0][0];
  const t1 = points[points.length - 1][0];
  let lo = Math.min(...points.map((p) => p[1]));
  let hi = Math.max(...points.map((p) => p[1]));
  if (hi - lo < 1e-9) [lo, hi] = [lo - 0.5, hi + 0.5];
  const x = (t) => (t1 > t0 ? 2 + ((t - t0) / (t1 - t0)) * (w - 4) : w - 3);
  const y = (v) => 3 + (1 - (v - lo) / (hi - lo)) * (h - 6);
  const pts = points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
  const [lt, lv] = points[points.length - 1];
  const title = `${kindInfo(kind).label}, last hour: ${fmt(Math.min(...points.map((p) => p[1])), kind)} – ${fmt(Math.max(...points.map((p) => p[1])), kind)} ${unitOf(kind)}`;
  return `<svg class="spark" viewBox="0 0 ${w} ${h}" width="${w}" height="${h}" role="img" aria-label="${escapeHtml(title)}"><title>${escapeHtml(title)}</title>${
    points.length > 1 ? `<polyline points="${pts}" fill="none" stroke="currentColor" stroke-width="1.6" stroke-linejoin="round" stroke-linecap="round"/>` : ''
  }<circle cx="${x(lt).toFixed(1)}" cy="${y(lv).toFixed(1)}" r="2.6" fill="currentColor"/></svg>`;
}

function stationPopup(s) {
  const kinds = [...s.latest.keys()].sort((a, b) => (a === state.selectedKind ? -1 : b === state.selectedKind ? 1 : kindInfo(a).label.localeCompare(kindInfo(b).label)));
  const rows = kinds
    .map((kind) => {
      const v = s.latest.get(kind);
      const cls = kind === state.selectedKind ? ' class="sel"' : '';
      return `<tr${cls}><th>${escapeHtml(kindInfo(kind).label)}</th><td class="v">${escapeHtml(fmt(v.value, kind))}<span class="u">${escapeHtml(v.unit || unitOf(kind))}</span></td><td class="spark-cell">${sparkline(s.history.get(kind), kind)}</td></tr>`;
    })
    .join('');
  const latestTs = Math.max(0, ...[...s.latest.values()].map((v) => v.ts || 0));
  const alerts = [...state.alerts.values()].filter((a) => a.sensorId === s.id);
  const sub = [s.id !== s.name ? s.id : null, Number.isFinite(s.altitude) ? `${Math.round(s.altitude)} m` : null].filter(Boolean).join(' · ');
  return `<div class="popup station-popup" data-station="${escapeHtml(s.id)}">
    <div class="p-title">${escapeHtml(s.name)}</div>
    ${sub ? `<div class="p-sub">${escapeHtml(sub)}</div>` : ''}
    ${alerts.map((a) => `<div class="p-alert">⚠ ${escapeHtml(alertText(a))}</div>`).join('')}
    ${rows ? `<table class="p-values">${rows}</table>` : '<div class="p-sub">No reading yet.</div>'}
    ${latestTs ? `<div class="p-foot">Latest reading ${escapeHtml(DAY_HM.format(latestTs))} · chart: last hour</div>` : ''}
  </div>`;
}

// --- Messages ----------------------------------------------------------------------------

function noteKind(kind, unit, where) {
  let k = state.kinds.get(kind);
  if (!k) {
    k = { unit: unit || '', quartiers: false, stations: false };
    state.kinds.set(kind, k);
    state.kindsDirty = true;
  }
  if (unit && !k.unit) k.unit = unit;
  if (!k[where]) {
    k[where] = true;
    state.kindsDirty = true;
  }
}

function tsOf(p) {
  const t = typeof p.ts === 'number' ? p.ts : Date.parse(p.ts);
  return Number.isFinite(t) ? t : Date.now();
}

// SenML packs (RFC 8428), read as the host reads them (host/src/senml.rs): base fields carry
// forward, the name's last `:` or `/` separates the sensor from what it measures, a time below
// 2^28 s counts from now, and records with the units `lat` and `lon` place their sensor. A record
// without a numeric `v` (or with a field ending in `_`) is not a reading and is skipped.
const SENML_LABELS = ['bn', 'bt', 'bu', 'bv', 'bver', 'n', 'u', 'v', 'vs', 'vb', 'vd', 's', 't', 'ut'];
const SENML_RELATIVE_S = 2 ** 28;

function isSenml(pack) {
  const first = pack[0];
  return !!first && typeof first === 'object' && !('sensor_id' in first) && SENML_LABELS.some((k) => k in first);
}

function senmlReadings(pack, now = Date.now()) {
  const base = { n: '', t: 0, u: '', v: 0 };
  const readings = [];
  const positions = new Map();
  for (const r of pack) {
    if (!r || typeof r !== 'object') continue;
    if (typeof r.bn === 'string') base.n = r.bn;
    if (Number.isFinite(r.bt)) base.t = r.bt;
    if (typeof r.bu === 'string') base.u = r.bu;
    if (Number.isFinite(r.bv)) base.v = r.bv;
    if (!Number.isFinite(r.v) || Object.keys(r).some((k) => k.endsWith('_'))) continue;
    const name = base.n + (typeof r.n === 'string' ? r.n : '');
    const cut = Math.max(name.lastIndexOf(':'), name.lastIndexOf('/'));
    if (cut <= 0 || cut === name.length - 1) continue;
    const sensor = name.slice(0, cut);
    const unit = typeof r.u === 'string' ? r.u : base.u;
    const value = base.v + r.v;
    if (unit === 'lat' || unit === 'lon') {
      positions.set(sensor, { ...positions.get(sensor), [unit]: value });
      continue;
    }
    const seconds = base.t + (Number.isFinite(r.t) ? r.t : 0);
    const ts = Math.round(seconds < SENML_RELATIVE_S ? now + seconds * 1000 : seconds * 1000);
    readings.push({ sensor_id: sensor, kind: name.slice(cut + 1), value, unit, ts });
  }
  // A pack is one moment of its sensors: a position anywhere in it holds for all their readings.
  return readings.map((reading) => ({ ...reading, ...positions.get(reading.sensor_id) }));
}

function onReading(kindFromTopic, idFromTopic, p) {
  const kind = p.kind || kindFromTopic;
  const id = String(p.sensor_id || idFromTopic);
  const value = Number(p.value);
  if (!kind || !id || !Number.isFinite(value)) return;
  noteKind(kind, p.unit, 'stations');
  const s = ensureStation(id, Number(p.lat), Number(p.lon));
  if (!s) return;
  const name = p.tags?.station_name;
  if (name && !s.meta) s.name = name;
  const ts = tsOf(p);
  s.latest.set(kind, { value, unit: p.unit || '', ts });
  let h = s.history.get(kind);
  if (!h) s.history.set(kind, (h = []));
  if (h.length && ts < h[h.length - 1][0]) {
    // Out of order (a replay, a late reading): keep the series sorted.
    h.push([ts, value]);
    h.sort((a, b) => a[0] - b[0]);
  } else {
    h.push([ts, value]);
  }
  const from = h[h.length - 1][0] - HOUR_MS;
  let cut = 0;
  while (cut < h.length && h[cut][0] < from) cut++;
  if (cut) h.splice(0, cut);
  if (h.length > MAX_POINTS) h.splice(0, h.length - MAX_POINTS);
  state.dataTime = Math.max(state.dataTime || 0, ts);
}

function onQuartier(id, kindFromTopic, p) {
  const kind = p.kind || kindFromTopic;
  const value = Number(p.value);
  if (!kind || !Number.isFinite(value)) return;
  noteKind(kind, p.unit, 'quartiers');
  const q = state.quartiers.get(String(id));
  if (!q) return;
  q.values.set(kind, { value, ts: tsOf(p), fields: p.fields || {}, received: Date.now() });
  state.dataTime = Math.max(state.dataTime || 0, tsOf(p));
}

function onAlert(kindFromTopic, p) {
  const kind = p.kind || kindFromTopic;
  const sensorId = String(p.sensor_id ?? '');
  if (!kind || !sensorId) return;
  const key = `${kind}|${sensorId}`;
  const st = String(p.tags?.state || 'start').toLowerCase();
  if (st === 'end') {
    state.alerts.delete(key);
  } else {
    state.alerts.set(key, {
      key,
      kind,
      sensorId,
      value: Number(p.value),
      unit: p.unit || unitOf(kind),
      ts: tsOf(p),
      fields: p.fields || {},
      tags: p.tags || {},
      lat: Number(p.lat),
      lon: Number(p.lon),
      received: Date.now(),
    });
  }
}

function onStationMeta(idFromTopic, p) {
  const id = String(p.station_id || idFromTopic);
  const s = ensureStation(id, Number(p.lat), Number(p.lon));
  if (!s) return;
  s.meta = p;
  if (p.name) s.name = p.name;
  if (Number.isFinite(Number(p.altitude))) s.altitude = Number(p.altitude);
  for (const sensor of p.sensors || []) if (sensor.kind) noteKind(sensor.kind, sensor.unit, 'stations');
}

function onMessage(topic, payload) {
  state.messages++;
  state.lastMessageAt = Date.now();
  state.dirty = true;
  if (!payload || payload.length === 0) return; // a cleared retained message
  let p;
  try {
    p = JSON.parse(new TextDecoder().decode(payload));
  } catch {
    state.badMessages++;
    return;
  }
  if (!p || typeof p !== 'object') return;
  if (topic.startsWith('garonne/status/')) {
    state.hosts.set(topic.slice('garonne/status/'.length), p);
    return;
  }
  if (!topic.startsWith(`${state.prefix}/`)) return;
  const parts = topic.slice(state.prefix.length + 1).split('/');
  switch (parts[0]) {
    case 'sensors':
      // A pack (a JSON array of readings, as a gateway sends them, or a SenML pack): each reading
      // names its own sensor and kind; the topic is the gateway's.
      if (Array.isArray(p)) {
        const readings = isSenml(p) ? senmlReadings(p) : p;
        for (const reading of readings) if (reading && typeof reading === 'object') onReading('', '', reading);
      } else {
        onReading(parts[1], parts.slice(2).join('/'), p);
      }
      break;
    case 'quartiers':
      onQuartier(parts[1], parts[2], p);
      break;
    case 'alerts':
      onAlert(parts[1], p);
      break;
    case 'meta':
      if (parts[1] === 'stations') onStationMeta(parts.slice(2).join('/'), p);
      break;
    default:
      break; // unassigned/…, stats/…, clean/…: not shown
  }
}

// --- MQTT --------------------------------------------------------------------------------

function setConnection(s) {
  state.connection = s;
  const el = $('conn');
  el.dataset.state = s;
  $('conn-text').textContent = s;
}

function connect(config) {
  const id = `garonne-web-${Math.random().toString(16).slice(2, 10)}`;
  client = mqttLib.connect(config.mqttUrl, {
    clientId: id,
    protocolVersion: config.mqttVersion,
    clean: true,
    keepalive: 30,
    reconnectPeriod: 2000,
    connectTimeout: 10_000,
    resubscribe: false, // subscribed again on every `connect` below
    timerVariant: 'native', // no Web Worker (blocked by the Content-Security-Policy)
    username: config.username,
    password: config.password,
  });
  const filters = [`${config.prefix}/sensors/#`, `${config.prefix}/quartiers/#`, `${config.prefix}/alerts/#`, `${config.prefix}/meta/stations/#`, 'garonne/status/#'];
  client.on('connect', () => {
    setConnection('connected');
    client.subscribe(filters, { qos: 0 }, (err) => {
      if (err) console.warn('subscribe failed:', err.message);
    });
  });
  client.on('reconnect', () => setConnection('reconnecting'));
  client.on('close', () => {
    if (state.connection === 'connected') setConnection('reconnecting');
  });
  client.on('offline', () => setConnection('reconnecting'));
  client.on('error', (e) => console.warn('MQTT:', e.message));
  client.on('message', onMessage);
  return client;
}

// --- Rendering ---------------------------------------------------------------------------

// The measure chosen last time on this screen (storage may be unavailable: private mode, file://).
function storedKind(kind) {
  try {
    if (kind) localStorage.setItem('garonne.kind', kind);
    return localStorage.getItem('garonne.kind');
  } catch {
    return null;
  }
}

function renderKinds() {
  if (!state.kindsDirty) return;
  state.kindsDirty = false;
  const select = $('kind');
  const kinds = [...state.kinds.keys()].sort((a, b) => {
    const qa = state.kinds.get(a).quartiers ? 0 : 1;
    const qb = state.kinds.get(b).quartiers ? 0 : 1;
    return qa - qb || kindInfo(a).label.localeCompare(kindInfo(b).label);
  });
  if (!state.selectedKind || !state.kinds.has(state.selectedKind)) {
    const wanted = [state.config.kind, storedKind(), 'temperature'].find((k) => k && state.kinds.has(k));
    state.selectedKind = wanted || kinds[0] || null;
  }
  select.replaceChildren(
    ...kinds.map((k) => {
      const o = document.createElement('option');
      o.value = k;
      const unit = state.kinds.get(k).unit;
      o.textContent = unit ? `${kindInfo(k).label} (${unit})` : kindInfo(k).label;
      o.selected = k === state.selectedKind;
      return o;
    }),
  );
  select.disabled = kinds.length === 0;
}

function currentScale(kind) {
  const info = kindInfo(kind);
  let values = [];
  let source = 'quartiers';
  for (const q of state.quartiers.values()) {
    const v = q.values.get(kind);
    if (v) values.push(v.value);
  }
  if (!values.length) {
    source = 'stations';
    for (const s of state.stations.values()) {
      const v = s.latest.get(kind);
      if (v) values.push(v.value);
    }
  }
  if (!values.length) return null;
  const min = Math.min(...values);
  const max = Math.max(...values);
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const domain = niceDomain(min, max, info.span);
  const color = (v) => rampColor(info.palette, (v - domain.lo) / (domain.hi - domain.lo));
  return { min, max, mean, count: values.length, source, domain, color, palette: info.palette };
}

function renderQuartiers(kind, scale) {
  const alerted = new Set([...state.alerts.values()].map((a) => a.sensorId));
  let relabel = false;
  for (const q of state.quartiers.values()) {
    const v = kind && q.values.get(kind);
    const has = v && scale && scale.source === 'quartiers';
    q.layer.setStyle(
      has
        ? { fillColor: scale.color(v.value), fillOpacity: document.body.classList.contains('has-tiles') ? 0.6 : 0.82, dashArray: null }
        : { fillColor: '#263445', fillOpacity: 0.45, dashArray: '4 4' },
    );
    const el = q.layer.getElement();
    if (el) {
      const isAlert = alerted.has(q.id);
      if (isAlert && !el.classList.contains('q-alert')) q.layer.bringToFront(); // its outline on top
      el.classList.toggle('q-alert', isAlert);
      el.classList.toggle('q-nodata', !has);
    }
    if (q.label) {
      const labelEl = q.label.getElement();
      if (labelEl) {
        const text = has ? fmt(v.value, kind) : '—';
        const val = labelEl.querySelector('.q-val');
        if (val.textContent !== text) {
          relabel ||= val.textContent.length !== text.length;
          val.textContent = text;
        }
        labelEl.classList.toggle('alert', alerted.has(q.id));
      }
    }
  }
  if (relabel) declutterLabels();
}

function renderStations(kind, scale) {
  const alerted = new Set([...state.alerts.values()].map((a) => a.sensorId));
  for (const s of state.stations.values()) {
    const v = kind && s.latest.get(kind);
    const isAlert = alerted.has(s.id);
    s.marker.setStyle({
      fillColor: v && scale ? scale.color(v.value) : '#8a99a8',
      color: isAlert ? '#ff3b3b' : '#0b1118',
      weight: isAlert ? 3.5 : 1.5,
      radius: isAlert ? 9 : v ? 6 : 4.5,
    });
    const el = s.marker.getElement();
    if (el) el.classList.toggle('st-alert', isAlert);
  }
}

function renderLegend(kind, scale) {
  const legend = $('legend');
  if (!kind || !scale) {
    $('legend-title').textContent = 'Quartier averages';
    $('legend-source').textContent = '';
    legend.replaceChildren(Object.assign(document.createElement('div'), { className: 'legend-empty', textContent: kind ? `No ${kindInfo(kind).label.toLowerCase()} yet.` : 'No averages yet.' }));
    return;
  }
  const info = kindInfo(kind);
  const unit = unitOf(kind);
  $('legend-title').textContent = `${info.label}${unit ? ` (${unit})` : ''}`;
  $('legend-source').textContent = scale.source === 'quartiers' ? 'quartier averages' : 'station readings';

  const bar = document.createElement('div');
  bar.className = 'legend-bar';
  const stops = PALETTES[scale.palette] || PALETTES.viridis;
  bar.style.backgroundImage = `linear-gradient(to right, ${stops.join(', ')})`;
  // Where the current min and max fall on the bar.
  const { lo, hi, ticks } = scale.domain;
  const pos = (v) => `${(((v - lo) / (hi - lo)) * 100).toFixed(2)}%`;
  const range = document.createElement('div');
  range.className = 'legend-range';
  range.style.left = pos(scale.min);
  range.style.width = `calc(${pos(scale.max)} - ${pos(scale.min)})`;
  bar.append(range);

  const tickRow = document.createElement('div');
  tickRow.className = 'legend-ticks';
  for (const t of ticks) {
    const span = document.createElement('span');
    span.textContent = t.toLocaleString('en-GB', { maximumFractionDigits: 2 });
    span.style.left = pos(t);
    tickRow.append(span);
  }

  const summary = document.createElement('div');
  summary.className = 'legend-summary';
  const cell = (k, v) => {
    const d = document.createElement('div');
    d.innerHTML = `<span class="k">${escapeHtml(k)}</span><span class="v">${escapeHtml(v)}</span>`;
    return d;
  };
  summary.append(cell('min', withUnit(scale.min, kind)), cell('mean', withUnit(scale.mean, kind)), cell('max', withUnit(scale.max, kind)));

  const foot = document.createElement('div');
  foot.className = 'legend-foot';
  if (scale.source === 'quartiers') {
    let latest = null;
    for (const q of state.quartiers.values()) {
      const v = q.values.get(kind);
      if (v && (!latest || v.ts > latest.ts)) latest = v;
    }
    const w = latest?.fields?.window_s;
    foot.textContent = `${scale.count}/${state.quartiers.size} quartiers · window ending ${latest ? HM.format(latest.ts) : '—'}${Number.isFinite(w) ? ` (${duration(w)})` : ''}`;
  } else {
    foot.textContent = `${scale.count} stations · no quartier average for this measure yet`;
  }
  legend.replaceChildren(bar, tickRow, summary, foot);
}

function renderRanking(kind, scale) {
  const list = $('ranking');
  const rows = [...state.quartiers.values()]
    .map((q) => ({ q, v: kind && q.values.get(kind) }))
    .sort((a, b) => (b.v ? b.v.value : -Infinity) - (a.v ? a.v.value : -Infinity) || a.q.short.localeCompare(b.q.short));
  const alerted = new Set([...state.alerts.values()].map((a) => a.sensorId));
  list.replaceChildren(
    ...rows.map(({ q, v }) => {
      const li = document.createElement('li');
      li.dataset.quartier = q.id;
      if (alerted.has(q.id)) li.classList.add('alert');
      const sw = document.createElement('span');
      sw.className = 'swatch';
      sw.style.backgroundColor = v && scale && scale.source === 'quartiers' ? scale.color(v.value) : 'transparent';
      const name = document.createElement('span');
      name.className = 'name';
      name.textContent = q.short;
      name.title = q.name;
      const val = document.createElement('span');
      val.className = 'val';
      val.textContent = v ? withUnit(v.value, kind) : '—';
      li.append(sw, name, val);
      li.addEventListener('click', () => map.fitBounds(q.layer.getBounds(), { maxZoom: 14, padding: [40, 40] }));
      return li;
    }),
  );
}

function subjectOf(alert) {
  const s = state.stations.get(alert.sensorId);
  if (s) return { type: 'station', name: s.name, station: s };
  const q = state.quartiers.get(alert.sensorId);
  if (q) return { type: 'quartier', name: q.name, quartier: q };
  return { type: 'other', name: alert.tags?.quartier || alert.tags?.station_name || alert.sensorId };
}

function alertText(a) {
  const f = a.fields || {};
  const label = kindInfo(a.kind).label;
  const unit = a.unit || unitOf(a.kind);
  const parts = [];
  if (Number.isFinite(f.above)) parts.push(`above ${fmt(f.above, a.kind)} ${unit}`.trim());
  if (Number.isFinite(f.below)) parts.push(`below ${fmt(f.below, a.kind)} ${unit}`.trim());
  return `${label} ${parts.join(' / ') || 'alert'}`;
}

function renderAlerts() {
  const list = $('alerts');
  const alerts = [...state.alerts.values()].sort((a, b) => b.received - a.received);
  $('alert-count').textContent = String(alerts.length);
  $('alerts-card').classList.toggle('has-alerts', alerts.length > 0);
  const badge = $('alert-badge');
  badge.hidden = alerts.length === 0;
  badge.textContent = `⚠ ${alerts.length} active alert${alerts.length === 1 ? '' : 's'}`;

  alertLayer.clearLayers();
  if (!alerts.length) {
    list.replaceChildren(Object.assign(document.createElement('li'), { className: 'none', textContent: 'No active alert.' }));
    return;
  }
  list.replaceChildren(
    ...alerts.map((a) => {
      const subject = subjectOf(a);
      const li = document.createElement('li');
      li.className = 'alert-item';
      li.dataset.kind = a.kind;
      li.dataset.sensor = a.sensorId;
      const f = a.fields || {};
      const since = Number.isFinite(f.since) ? f.since : a.ts;
      const lasted = Number.isFinite(f.duration_s) ? ` · for ${duration(f.duration_s)}` : '';
      li.innerHTML = `<div class="a-head"><span class="a-kind">${escapeHtml(alertText(a))}</span><span class="a-val">${escapeHtml(Number.isFinite(a.value) ? withUnit(a.value, a.kind) : '')}</span></div>
        <div class="a-where">${escapeHtml(subject.name)}</div>
        <div class="a-when">since ${escapeHtml(DAY_HM.format(since))}${escapeHtml(lasted)}</div>`;
      let target = null;
      if (subject.type === 'quartier') target = () => map.fitBounds(subject.quartier.layer.getBounds(), { maxZoom: 14, padding: [40, 40] });
      else if (subject.type === 'station') target = () => subject.station.marker.openPopup();
      else if (Number.isFinite(a.lat) && Number.isFinite(a.lon)) {
        // A subject the map does not know: a ring where it is.
        L.circleMarker([a.lat, a.lon], { pane: 'stations', radius: 12, color: '#ff3b3b', weight: 3, fill: false, className: 'alert-ring' }).addTo(alertLayer);
        target = () => map.panTo([a.lat, a.lon]);
      }
      if (target) {
        li.classList.add('clickable');
        li.addEventListener('click', target);
      }
      return li;
    }),
  );
}

function renderClock() {
  const now = Date.now();
  $('data-time').textContent = state.dataTime ? DAY_HM.format(state.dataTime) : '—';
  const last = $('last-message');
  if (state.lastMessageAt) {
    last.textContent = `${TIME.format(state.lastMessageAt)} (${ago(now - state.lastMessageAt)})`;
    last.classList.toggle('stale', now - state.lastMessageAt > 30_000);
  }
  // Messages per second over the last 10 s.
  state.rate.push([now, state.messages]);
  while (state.rate.length > 2 && now - state.rate[0][0] > 10_000) state.rate.shift();
  const [t0, m0] = state.rate[0];
  const rate = now > t0 ? ((state.messages - m0) * 1000) / (now - t0) : 0;
  const withData = [...state.quartiers.values()].filter((q) => q.values.size).length;
  $('stats').textContent = `${state.stations.size} stations · ${withData}/${state.quartiers.size} quartiers reporting · ${rate.toFixed(0)} msg/s`;
  const hosts = [...state.hosts.entries()].map(([name, p]) => `${name}: ${p.state || 'unknown'}`);
  $('hosts').textContent = hosts.length ? `Hosts: ${hosts.join(', ')}` : '';
}

function render() {
  state.dirty = false;
  renderKinds();
  const kind = state.selectedKind;
  const scale = kind ? currentScale(kind) : null;
  renderQuartiers(kind, scale);
  renderStations(kind, scale);
  renderLegend(kind, scale);
  renderRanking(kind, scale);
  renderAlerts();
  if (state.openStation) {
    const s = state.stations.get(state.openStation);
    const popup = s?.marker.getPopup();
    if (popup?.isOpen()) popup.setContent(stationPopup(s));
  }
}

// --- Start -------------------------------------------------------------------------------

async function main() {
  const config = await loadConfig();
  state.config = config;
  state.prefix = config.prefix;
  document.body.classList.toggle('theme-light', config.theme === 'light');
  document.body.classList.toggle('theme-dark', config.theme !== 'light');
  await setupMap(config);

  $('kind').addEventListener('change', (e) => {
    state.selectedKind = e.target.value;
    storedKind(state.selectedKind);
    render();
  });

  connect(config);
  window.garonne = { client, state, config, render };

  setInterval(() => {
    if (state.dirty) render();
  }, 500);
  setInterval(renderClock, 1000);
  renderClock();
  render();
}

main().catch((e) => {
  console.error('Garonne map failed to start:', e);
  setConnection('error');
  $('conn-text').textContent = `error: ${e.message}`;
});
