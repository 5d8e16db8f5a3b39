#!/usr/bin/env node
// End-to-end test of the live web map: real Mosquitto (deploy/mosquitto), real nginx
// (deploy/nginx), the Garonne host running a fast simulated pipeline (web/test/pipeline.toml),
// and the page in headless Chromium driven by playwright-core.
//
//   cd web && npm ci && npm test        (or: node web/test/e2e.mjs from the repository root)
//
// Everything runs on 127.0.0.1 with free ports, in a temporary folder, and is stopped at the
// end, on failure too. Environment:
//   HOST_BIN        the host binary (default: target/debug/host of the repository)
//   CHROMIUM_PATH   the browser (default: /usr/bin/chromium)
//   MOSQUITTO_BIN, NGINX_BIN   (default: /usr/sbin/mosquitto, /usr/sbin/nginx)
//   KEEP_TMP=1      keep the temporary folder (configs and logs) even when every check passes
// Prints PASS/FAIL per check and a closing "N passed, N failed" line; exits 1 on any failure.
// The screenshot is written to web/test/artifacts/map.png.

import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { chromium } from 'playwright-core';

const here = path.dirname(fileURLToPath(import.meta.url));
const web = path.resolve(here, '..');
const repo = path.resolve(web, '..');
const HOST_BIN = path.resolve(repo, process.env.HOST_BIN || 'target/debug/host');
const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const MOSQUITTO = process.env.MOSQUITTO_BIN || '/usr/sbin/mosquitto';
const NGINX = process.env.NGINX_BIN || '/usr/sbin/nginx';
const ARTIFACTS = path.join(here, 'artifacts');
const PREFIX = 'toulouse';
const HOST_USER = 'garonne-host';
const HOST_PASSWORD = randomBytes(12).toString('hex');

// Generous: the machine is small and shared.
const T_START = 30_000;
const T_DATA = 60_000;
const T_UI = 30_000;
const started = Date.now();

// --- Reporting -------------------------------------------------------------------------------

const results = [];
const elapsed = () => `${((Date.now() - started) / 1000).toFixed(1)}s`;

function record(name, ok, detail = '') {
  results.push({ name, ok });
  console.log(`${ok ? 'PASS' : 'FAIL'}  ${name}${detail ? ` — ${detail}` : ''}  [${elapsed()}]`);
}

// Runs one check: its function returns a detail string, or throws with the reason.
async function check(name, fn) {
  try {
    record(name, true, (await fn()) || '');
    return true;
  } catch (e) {
    record(name, false, e?.message?.split('\n')[0] || String(e));
    return false;
  }
}

function log(message) {
  console.log(`      ${message}  [${elapsed()}]`);
}

// --- Helpers ---------------------------------------------------------------------------------

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls `fn` until it returns a truthy value, or throws `what` at the deadline.
async function until(what, fn, timeoutMs, everyMs = 200) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}${last ? ` (${last.message})` : ''}`);
    await sleep(everyMs);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    const done = (ok) => {
      sock.destroy();
      resolve(ok);
    };
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
    sock.setTimeout(2000, () => done(false));
  });
}

function render(template, values) {
  let text = fs.readFileSync(template, 'utf8');
  for (const [k, v] of Object.entries(values)) text = text.split(`@${k}@`).join(v);
  const left = text
    .split('\n')
    .filter((l) => !l.trim().startsWith('#'))
    .join('\n')
    .match(/@[A-Z_]+@/);
  if (left) throw new Error(`${template}: placeholder ${left[0]} not filled`);
  return text;
}

// Child processes, each logging to a file of the temporary folder; stopped in `finally`.
const children = new Set();

function startProcess(name, cmd, args, opts = {}) {
  const logFile = path.join(opts.logDir, `${name}.log`);
  const out = fs.openSync(logFile, 'a');
  const child = spawn(cmd, args, { cwd: opts.cwd || repo, env: opts.env || process.env, stdio: ['ignore', out, out] });
  fs.closeSync(out);
  child.name = name;
  child.logFile = logFile;
  child.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  child.once('error', (e) => log(`${name}: ${e.message}`));
  children.add(child);
  child.exited.then(() => children.delete(child));
  return child;
}

async function stopProcess(child, signal = 'SIGTERM', graceMs = 5000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill(signal);
  const timer = sleep(graceMs).then(() => 'timeout');
  if ((await Promise.race([child.exited, timer])) === 'timeout') {
    child.kill('SIGKILL');
    await child.exited;
  }
}

function tail(file, lines = 15) {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

// The listening sockets of these ports, from `ss`: each must be on 127.0.0.1 only.
function listeners(ports) {
  const out = execFileSync('ss', ['-ltnH'], { encoding: 'utf8' });
  const found = [];
  for (const line of out.split('\n')) {
    const local = line.trim().split(/\s+/)[3];
    if (!local) continue;
    const port = Number(local.slice(local.lastIndexOf(':') + 1));
    if (ports.includes(port)) found.push(local);
  }
  return found;
}

// --- The test --------------------------------------------------------------------------------

async function main() {
  for (const [what, file] of [
    ['host binary (HOST_BIN)', HOST_BIN],
    ['Chromium (CHROMIUM_PATH)', CHROMIUM],
    ['Mosquitto', MOSQUITTO],
    ['nginx', NGINX],
    ['plugin synthetic.wasm', path.join(repo, 'plugins/target/wasm32-wasip2/release/synthetic.wasm')],
    ['plugin avg_quartier.wasm', path.join(repo, 'plugins/target/wasm32-wasip2/release/avg_quartier.wasm')],
    ['vendored Leaflet (npm ci / npm run prepare-assets)', path.join(web, 'public/vendor/leaflet/leaflet.js')],
    ['vendored mqtt.js (npm ci / npm run prepare-assets)', path.join(web, 'public/vendor/mqtt/mqtt.min.js')],
    ['quartier outlines (npm run prepare-assets)', path.join(web, 'public/geo/quartiers.geojson')],
  ]) {
    if (!fs.existsSync(file)) throw new Error(`missing ${what}: ${file}`);
  }

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'garonne-web-e2e-'));
  // Mosquitto and nginx drop root for their own users, which must read the configs and the site.
  fs.chmodSync(tmp, 0o755);
  let keep = !!process.env.KEEP_TMP;
  let browser;
  let tcpClient;
  const ports = { tcp: await freePort(), ws: await freePort(), http: await freePort() };
  log(`temporary folder ${tmp}; ports: mqtt ${ports.tcp}, websocket ${ports.ws}, http ${ports.http}`);

  try {
    // --- Mosquitto -------------------------------------------------------------------------
    const mosqDir = path.join(tmp, 'mosquitto');
    fs.mkdirSync(mosqDir, { mode: 0o755 });
    for (const f of ['acl-tcp', 'acl-ws']) fs.copyFileSync(path.join(repo, 'deploy/mosquitto', f), path.join(mosqDir, f));
    execFileSync('mosquitto_passwd', ['-c', '-b', path.join(mosqDir, 'passwd'), HOST_USER, HOST_PASSWORD]);
    fs.writeFileSync(
      path.join(mosqDir, 'mosquitto.conf'),
      render(path.join(repo, 'deploy/mosquitto/mosquitto.conf'), { BIND: '127.0.0.1', TCP_PORT: String(ports.tcp), WS_PORT: String(ports.ws), CONF_DIR: mosqDir }),
    );
    for (const f of fs.readdirSync(mosqDir)) fs.chmodSync(path.join(mosqDir, f), 0o644);
    const mosqArgs = ['-c', path.join(mosqDir, 'mosquitto.conf')];
    const startMosquitto = async () => {
      const child = startProcess('mosquitto', MOSQUITTO, mosqArgs, { logDir: tmp });
      await until(
        'Mosquitto to listen',
        async () => {
          if (child.exitCode !== null) throw new Error(`Mosquitto exited: ${tail(child.logFile, 5)}`);
          return (await canConnect(ports.tcp)) && (await canConnect(ports.ws));
        },
        T_START,
      );
      return child;
    };
    let mosquitto = await startMosquitto();

    // --- nginx -----------------------------------------------------------------------------
    const www = path.join(tmp, 'www');
    fs.cpSync(path.join(web, 'public'), www, { recursive: true });
    fs.rmSync(path.join(www, 'config.json'), { force: true });
    const nginxDir = path.join(tmp, 'nginx');
    fs.mkdirSync(nginxDir, { mode: 0o755 });
    fs.writeFileSync(
      path.join(nginxDir, 'nginx.conf'),
      render(path.join(repo, 'deploy/nginx/nginx.conf'), {
        ADDR: '127.0.0.1',
        PORT: String(ports.http),
        ROOT: www,
        MQTT_WS: `127.0.0.1:${ports.ws}`,
        TILES_ORIGIN: '',
        CONNECT_SRC: '',
      }),
    );
    execFileSync('chmod', ['-R', 'a+rX', www, nginxDir]);
    const nginx = startProcess('nginx', NGINX, ['-p', nginxDir, '-c', 'nginx.conf', '-e', 'stderr'], { logDir: tmp });
    const base = `http://127.0.0.1:${ports.http}`;
    await until(
      'nginx to answer',
      async () => {
        if (nginx.exitCode !== null) throw new Error(`nginx exited: ${tail(nginx.logFile, 5)}`);
        return (await fetch(`${base}/`)).ok;
      },
      T_START,
    );

    // --- The host --------------------------------------------------------------------------
    const host = startProcess('host', HOST_BIN, ['run', '--mqtt', `mqtt://127.0.0.1:${ports.tcp}`, '--config', path.join(here, 'pipeline.toml')], {
      logDir: tmp,
      env: { ...process.env, GARONNE_MQTT_USERNAME: HOST_USER, GARONNE_MQTT_PASSWORD: HOST_PASSWORD, RUST_LOG: process.env.RUST_LOG || 'warn' },
    });
    host.exited.then(({ code, signal }) => {
      if (!stopping) log(`host exited early (code ${code}, signal ${signal}): ${tail(host.logFile, 8)}`);
    });

    // --- Infrastructure checks -------------------------------------------------------------
    await check('services listen on 127.0.0.1 only', async () => {
      const found = listeners([ports.tcp, ports.ws, ports.http]);
      const bad = found.filter((l) => !l.startsWith('127.0.0.1:'));
      if (bad.length) throw new Error(`listening beyond loopback: ${bad.join(', ')}`);
      if (found.length < 3) throw new Error(`expected 3 listeners, found ${found.join(', ')}`);
      return found.join(', ');
    });

    await check('nginx: caching and security headers', async () => {
      const noConfig = await fetch(`${base}/config.json`);
      if (noConfig.status !== 204) throw new Error(`/config.json without a file: HTTP ${noConfig.status}, expected 204`);
      const page = await fetch(`${base}/`);
      const h = page.headers;
      const csp = h.get('content-security-policy') || '';
      const want = {
        'x-content-type-options': /nosniff/,
        'x-frame-options': /DENY/,
        'referrer-policy': /no-referrer/,
        'cache-control': /no-cache/,
      };
      for (const [k, re] of Object.entries(want)) if (!re.test(h.get(k) || '')) throw new Error(`index.html: ${k} is ${h.get(k)}`);
      for (const part of ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"]) {
        if (!csp.includes(part)) throw new Error(`CSP lacks ${part}: ${csp}`);
      }
      const vendor = await fetch(`${base}/vendor/leaflet/leaflet.js`);
      const vc = vendor.headers.get('cache-control') || '';
      const maxAge = Number(/max-age=(\d+)/.exec(vc)?.[1] || 0);
      if (!vendor.ok || maxAge < 86400) throw new Error(`vendor file: HTTP ${vendor.status}, cache-control ${vc}`);
      if (vendor.headers.get('content-type')?.split(';')[0] !== 'text/javascript') throw new Error(`leaflet.js served as ${vendor.headers.get('content-type')}`);
      const dot = await fetch(`${base}/.gitignore`);
      if (dot.status !== 404) throw new Error(`a dot-file is served: HTTP ${dot.status}`);
      return `CSP, nosniff, DENY, no-referrer; html no-cache, vendor max-age=${maxAge}, config.json 204 when absent`;
    });

    // The page's runtime config: the default broker URL (this server's /mqtt) and prefix.
    fs.writeFileSync(path.join(www, 'config.json'), JSON.stringify({ topic_prefix: PREFIX }, null, 2));
    fs.chmodSync(path.join(www, 'config.json'), 0o644);

    // A subscriber on the TCP side, as the host's user, for the fake-publish check.
    const received = [];
    tcpClient = mqtt.connect(`mqtt://127.0.0.1:${ports.tcp}`, { username: HOST_USER, password: HOST_PASSWORD, reconnectPeriod: 1000 });
    tcpClient.on('message', (topic, payload) => received.push({ topic, payload: payload.toString() }));
    tcpClient.on('error', () => {});
    await until('the TCP subscriber to connect', () => tcpClient.connected, T_START);
    await tcpClient.subscribeAsync(`${PREFIX}/sensors/temperature/fake`, { qos: 1 });

    // --- The browser -----------------------------------------------------------------------
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
      timeout: 60_000,
    });
    const context = await browser.newContext({ viewport: { width: 1600, height: 900 }, deviceScaleFactor: 1, timezoneId: 'Europe/Paris', locale: 'en-GB' });
    const page = await context.newPage();
    page.setDefaultTimeout(T_UI);

    // Console errors, page errors and requests, tagged with the phase they happened in: while
    // Mosquitto is down, the browser's own "WebSocket connection … failed" errors are expected.
    let phase = 'normal';
    const problems = [];
    const requests = [];
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push({ phase, text: `console: ${m.text()}` });
    });
    page.on('pageerror', (e) => problems.push({ phase, text: `page error: ${e.message}` }));
    page.on('request', (r) => requests.push(r.url()));
    page.on('response', (r) => {
      if (r.status() >= 400) problems.push({ phase, text: `HTTP ${r.status()} ${r.url()}` });
    });
    page.on('requestfailed', (r) => problems.push({ phase, text: `request failed: ${r.url()} ${r.failure()?.errorText}` }));

    const loaded = await check('page loads through nginx', async () => {
      const res = await page.goto(`${base}/`, { waitUntil: 'load', timeout: 60_000 });
      if (!res.ok()) throw new Error(`HTTP ${res.status()}`);
      await page.waitForFunction(() => window.garonne && window.garonne.client, null, { timeout: T_UI });
      return `${await page.title()}`;
    });
    if (!loaded) throw new Error('the page did not load: later checks skipped');

    await check('20 quartier shapes drawn, with labels', async () => {
      await page.waitForFunction(() => document.querySelectorAll('path.quartier').length === 20, null, { timeout: T_UI });
      const labels = await page.locator('.q-label').count();
      if (labels !== 20) throw new Error(`${labels} labels`);
      const names = await page.$$eval('path.quartier', (els) => els.map((e) => e.dataset.quartier).sort((a, b) => a - b).join(','));
      return `ids ${names}`;
    });

    await check('connected over MQTT-over-WebSocket via nginx /mqtt', async () => {
      await page.waitForFunction(() => document.getElementById('conn-text').textContent === 'connected', null, { timeout: T_DATA });
      const url = await page.evaluate(() => window.garonne.config.mqttUrl);
      if (url !== `ws://127.0.0.1:${ports.http}/mqtt`) throw new Error(`connected to ${url}`);
      return url;
    });

    await check('attribution for the open data; no tiles by default', async () => {
      const text = await page.locator('.leaflet-control-attribution').innerText();
      for (const want of ['Toulouse Métropole', 'Atmo Occitanie', 'JCDecaux']) if (!text.includes(want)) throw new Error(`attribution lacks ${want}: ${text}`);
      const tiles = await page.locator('.leaflet-tile').count();
      if (tiles) throw new Error(`${tiles} tiles loaded with no tiles_url`);
      return text.replace(/\s+/g, ' ');
    });

    const fills = () => page.$$eval('path.quartier', (els) => els.map((e) => e.getAttribute('fill')));
    const legendText = () => page.locator('#legend').innerText();

    await check('live averages colour the quartiers, with a legend and unit', async () => {
      await page.waitForFunction(
        () => document.querySelectorAll('path.quartier:not(.q-nodata)').length >= 15 && document.querySelector('#legend .legend-bar'),
        null,
        { timeout: T_DATA },
      );
      const f = await fills();
      const distinct = new Set(f).size;
      if (distinct < 3) throw new Error(`only ${distinct} distinct fill colours`);
      const title = await page.locator('#legend-title').textContent();
      if (!/Temperature \(°C\)/.test(title)) throw new Error(`legend title: ${title}`);
      const colored = await page.locator('path.quartier:not(.q-nodata)').count();
      return `${colored}/20 coloured, ${distinct} colours; legend "${title}"`;
    });

    await check('colours and legend change when new averages arrive', async () => {
      const before = { fills: await fills(), legend: await legendText() };
      const after = await until(
        'new fill colours and legend',
        async () => {
          const now = { fills: await fills(), legend: await legendText() };
          const changed = now.fills.filter((c, i) => c !== before.fills[i]).length;
          return changed > 0 && now.legend !== before.legend ? { ...now, changed } : null;
        },
        T_DATA,
        500,
      );
      const oneLine = (s) => s.replace(/\s+/g, ' ').trim();
      return `${after.changed}/20 fills changed; legend "${oneLine(before.legend)}" → "${oneLine(after.legend)}"`;
    });

    await check('measure selector built from the kinds seen', async () => {
      await page.waitForFunction(() => document.querySelectorAll('#kind option').length >= 2, null, { timeout: T_DATA });
      const options = await page.$$eval('#kind option', (os) => os.map((o) => o.value));
      for (const k of ['temperature', 'humidity']) if (!options.includes(k)) throw new Error(`options ${options}`);
      await page.selectOption('#kind', 'humidity');
      await page.waitForFunction(() => /Humidity \(%\)/.test(document.getElementById('legend-title').textContent), null, { timeout: T_UI });
      const label = await page.locator('.q-label .q-val').first().innerText();
      await page.selectOption('#kind', 'temperature');
      await page.waitForFunction(() => /Temperature/.test(document.getElementById('legend-title').textContent), null, { timeout: T_UI });
      return `options [${options.join(', ')}]; humidity shown (a label read ${label}), back to temperature`;
    });

    await check('station popup shows live values and a last-hour chart', async () => {
      const station = '00-station-meteo-toulouse-valade';
      const marker = page.locator(`path.station[data-station="${station}"]`);
      await marker.waitFor({ state: 'attached', timeout: T_DATA });
      // Wait for a little history, so the chart has a line.
      await page.waitForFunction((id) => (window.garonne.state.stations.get(id)?.history.get('temperature')?.length || 0) >= 3, station, { timeout: T_DATA });
      try {
        await marker.click({ timeout: 10_000 });
      } catch {
        await marker.dispatchEvent('click'); // covered by a label or another marker
      }
      const popup = page.locator('.leaflet-popup .station-popup');
      await popup.waitFor({ timeout: T_UI });
      const first = await popup.innerText();
      if (!/toulouse valade/i.test(first)) throw new Error(`popup: ${first}`);
      if (!/\d+(\.\d)?\s*°C/.test(first)) throw new Error(`no temperature in the popup: ${first}`);
      if (!/%/.test(first)) throw new Error(`no humidity in the popup: ${first}`);
      if ((await popup.locator('svg.spark polyline').count()) < 1) throw new Error('no sparkline');
      const next = await until('the popup to update', async () => {
        const t = await popup.innerText();
        return t !== first ? t : null;
      }, T_DATA, 500);
      const oneLine = (s) => s.replace(/\s+/g, ' ').trim();
      return `"${oneLine(first)}" → "${oneLine(next)}"`;
    });

    const pub = (topic, payload) =>
      execFileSync('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(ports.tcp), '-u', HOST_USER, '-P', HOST_PASSWORD, '-q', '1', '-t', topic, '-m', JSON.stringify(payload)]);
    const alertMsg = (state, extra = {}) => ({
      sensor_id: '5',
      kind: 'temperature',
      value: 4.2,
      unit: '°C',
      ts: new Date().toISOString(),
      lat: 43.58,
      lon: 1.45,
      fields: { below: 8, since: Date.now() - 1_800_000, duration_s: 1800 },
      tags: { state, quartier: 'Saint-Michel' },
      ...extra,
    });

    await check('a published alert is listed and highlighted on the map', async () => {
      pub(`${PREFIX}/alerts/temperature`, alertMsg('start'));
      await page.waitForSelector('#alerts .alert-item[data-sensor="5"][data-kind="temperature"]', { timeout: T_UI });
      await page.waitForSelector('path.quartier.q-alert[data-quartier="5"]', { timeout: T_UI });
      await page.waitForSelector('#alert-badge:not([hidden])', { timeout: T_UI });
      const text = (await page.locator('#alerts .alert-item').first().innerText()).replace(/\s+/g, ' ');
      if (!/below 8/.test(text) || !/Saint-Michel/.test(text)) throw new Error(`alert item: ${text}`);
      return text;
    });

    // The screenshot: live colours, a station popup, an alert.
    await check('screenshot saved', async () => {
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      const file = path.join(ARTIFACTS, 'map.png');
      await page.screenshot({ path: file });
      return path.relative(repo, file);
    });

    await check('an "end" message clears the alert', async () => {
      pub(`${PREFIX}/alerts/temperature`, alertMsg('end', { value: 8.4 }));
      await page.waitForFunction(() => !document.querySelector('#alerts .alert-item') && !document.querySelector('path.q-alert'), null, { timeout: T_UI });
      return 'list empty, highlight gone';
    });

    await check('a pack of readings (a JSON array) puts each of its stations on the map', async () => {
      const ts = new Date().toISOString();
      pub(`${PREFIX}/sensors/gateway/g1`, [
        { sensor_id: 'pack-a', kind: 'temperature', value: 11.5, unit: '°C', ts, lat: 43.61, lon: 1.43 },
        { sensor_id: 'pack-b', kind: 'temperature', value: 12.5, unit: '°C', ts, lat: 43.59, lon: 1.46 },
      ]);
      for (const id of ['pack-a', 'pack-b']) {
        await page.locator(`path.station[data-station="${id}"]`).waitFor({ state: 'attached', timeout: T_UI });
      }
      const values = await page.evaluate(() =>
        ['pack-a', 'pack-b'].map((id) => window.garonne.state.stations.get(id)?.latest.get('temperature')?.value));
      if (values.join(' ') !== '11.5 12.5') throw new Error(`latest values: ${values}`);
      return `two stations from one message, ${values.join(' and ')} °C`;
    });

    await check('a SenML pack (RFC 8428) puts its sensors on the map, placed by their lat/lon records', async () => {
      const bt = Math.floor(Date.now() / 1000);
      pub(`${PREFIX}/sensors/gateway/lora1`, [
        { bn: 'urn:dev:ow:senml-a:', bt, bu: 'Cel', n: 'temperature', v: 13.5 },
        { n: 'lat', u: 'lat', v: 43.62 },
        { n: 'lon', u: 'lon', v: 1.42 },
        { bn: 'urn:dev:ow:senml-b:', n: 'temperature', v: 14.5, t: -60 },
        { n: 'status', vs: 'ok' },
        { n: 'lat', u: 'lat', v: 43.58 },
        { n: 'lon', u: 'lon', v: 1.47 },
      ]);
      const ids = ['urn:dev:ow:senml-a', 'urn:dev:ow:senml-b'];
      for (const id of ids) {
        await page.locator(`path.station[data-station="${id}"]`).waitFor({ state: 'attached', timeout: T_UI });
      }
      const got = await page.evaluate((ids) => ids.map((id) => {
        const s = window.garonne.state.stations.get(id);
        const latest = s?.latest.get('temperature');
        return [latest?.value, latest?.unit, latest?.ts, s?.lat, s?.lon];
      }), ids);
      const want = [[13.5, 'Cel', bt * 1000, 43.62, 1.42], [14.5, 'Cel', (bt - 60) * 1000, 43.58, 1.47]];
      if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`got ${JSON.stringify(got)}`);
      return 'two sensors, base name, time and unit carried forward, a text record skipped';
    });

    await check('the page cannot publish (read-only WebSocket listener)', async () => {
      const topic = `${PREFIX}/sensors/temperature/fake`;
      const outcome = await page.evaluate(
        (t) =>
          window.garonne.client
            .publishAsync(t, JSON.stringify({ sensor_id: 'fake', kind: 'temperature', value: 99, unit: '°C', ts: new Date().toISOString() }), { qos: 1 })
            .then(
              () => 'acknowledged',
              (e) => `refused (${e.message})`,
            ),
        topic,
      );
      // Ordering proves the absence: the fake was handled by the broker (acknowledged or
      // refused) before this marker is sent, so it would have reached the subscriber first.
      // The marker is a valid reading (with no position: the map and the averages ignore it).
      const marker = JSON.stringify({ sensor_id: 'e2e-marker', kind: 'temperature', value: 0, unit: '°C', ts: new Date().toISOString() });
      await tcpClient.publishAsync(topic, marker, { qos: 1 });
      await until('the marker on the TCP subscriber', () => received.some((m) => m.payload === marker), T_UI);
      const fake = received.filter((m) => m.payload !== marker);
      if (fake.length) throw new Error(`the subscriber received the page's publish: ${fake[0].payload}`);
      const conn = await page.locator('#conn-text').innerText();
      if (conn !== 'connected') throw new Error(`the page's connection is ${conn} after the attempt`);
      // MQTT 3.1.1 (the page's default) has no way to report the refusal: the broker
      // acknowledges and drops the message. The ?mqttv=5 check below sees the refusal itself.
      return `page's publish ${outcome === 'acknowledged' ? 'acknowledged (MQTT 3.1.1) but dropped' : outcome}; the TCP subscriber got only the marker`;
    });
    await tcpClient.endAsync(true).catch(() => {});
    tcpClient = null;

    await check('shows "reconnecting" when Mosquitto dies, reconnects and gets new data after its restart', async () => {
      phase = 'broker down';
      await stopProcess(mosquitto, 'SIGKILL');
      await page.waitForFunction(() => document.getElementById('conn-text').textContent === 'reconnecting', null, { timeout: T_UI });
      log('page shows "reconnecting"; restarting Mosquitto on the same ports');
      mosquitto = await startMosquitto();
      const since = Date.now();
      await page.waitForFunction(() => document.getElementById('conn-text').textContent === 'connected', null, { timeout: T_DATA });
      phase = 'normal';
      // New quartier averages, received after the restart (the host has reconnected too).
      await page.waitForFunction(
        (t) => [...window.garonne.state.quartiers.values()].some((q) => [...q.values.values()].some((v) => v.received > t)),
        since,
        { timeout: T_DATA },
      );
      const last = await page.locator('#last-message').innerText();
      return `connected again in ${((Date.now() - since) / 1000).toFixed(1)} s, new averages; last message ${last}`;
    });

    await check('?mqtt= and ?mqttv=5 override the broker URL and version; MQTT 5 publish refused', async () => {
      const p2 = await context.newPage();
      p2.on('console', (m) => {
        if (m.type() === 'error') problems.push({ phase, text: `console (2nd page): ${m.text()}` });
      });
      p2.on('pageerror', (e) => problems.push({ phase, text: `page error (2nd page): ${e.message}` }));
      try {
        const url = `ws://127.0.0.1:${ports.http}/mqtt`;
        await p2.goto(`${base}/?mqtt=${encodeURIComponent(url)}&mqttv=5&kind=humidity`, { waitUntil: 'load' });
        await p2.waitForFunction(() => document.getElementById('conn-text')?.textContent === 'connected', null, { timeout: T_DATA });
        const { used, version } = await p2.evaluate(() => ({ used: window.garonne.config.mqttUrl, version: window.garonne.client.options.protocolVersion }));
        if (used !== url || version !== 5) throw new Error(`used ${used}, MQTT version ${version}`);
        const outcome = await p2.evaluate(() =>
          window.garonne.client.publishAsync('toulouse/sensors/temperature/fake', '{"value":99}', { qos: 1 }).then(
            () => 'acknowledged',
            (e) => e.message,
          ),
        );
        if (!/not authori[sz]ed/i.test(outcome)) throw new Error(`MQTT 5 publish: ${outcome}`);
        return `${used}, MQTT 5; publish: ${outcome}`;
      } finally {
        await p2.close();
      }
    });

    await check('no console errors, failed requests or CSP violations', async () => {
      const expectedWhileDown = (p) => p.phase === 'broker down' && /WebSocket connection to .* failed|\/mqtt/.test(p.text);
      const bad = problems.filter((p) => !expectedWhileDown(p));
      if (bad.length) throw new Error(bad.map((p) => `[${p.phase}] ${p.text}`).join(' | '));
      const foreign = requests.filter((u) => !u.startsWith(`${base}/`) && !u.startsWith(`ws://127.0.0.1:${ports.http}/`) && !u.startsWith('data:'));
      if (foreign.length) throw new Error(`requests outside the site (CDN?): ${foreign.slice(0, 3).join(', ')}`);
      const down = problems.length - bad.length;
      return `${requests.length} requests, all local; ${down} expected WebSocket error(s) while the broker was down`;
    });

    // A second screenshot after the reconnection, for the record.
    await page.screenshot({ path: path.join(ARTIFACTS, 'map-reconnected.png') }).catch(() => {});
  } catch (e) {
    record('test run', false, e.message.split('\n')[0]);
  } finally {
    stopping = true;
    if (results.some((r) => !r.ok)) {
      keep = true;
      for (const name of ['mosquitto', 'nginx', 'host']) {
        console.log(`----- last lines of ${name}.log -----\n${tail(path.join(tmp, `${name}.log`))}`);
      }
    }
    if (tcpClient) await tcpClient.endAsync(true).catch(() => {});
    if (browser) await browser.close().catch(() => {});
    await Promise.all([...children].map((c) => stopProcess(c)));
    if (keep) log(`kept ${tmp}`);
    else fs.rmSync(tmp, { recursive: true, force: true });
  }
}

// The demo's way: `host run --web web/public` with the embedded broker, no nginx and no
// Mosquitto. The page must find the embedded broker's WebSocket listener through the
// config.json the host serves, and show live averages.
function withoutBrokerUrl(env) {
  delete env.GARONNE_MQTT_URL;
  return env;
}

async function demoScenario() {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'garonne-web-demo-'));
  const ports = { mqtt: await freePort(), ws: await freePort(), http: await freePort() };
  const pipeline = path.join(tmp, 'pipeline.toml');
  // The same pipeline as above, on the embedded broker's free port.
  const text = fs.readFileSync(path.join(here, 'pipeline.toml'), 'utf8').replaceAll('../../', `${repo}/`);
  fs.writeFileSync(pipeline, `${text}\n`);
  let browser;
  try {
    const host = startProcess('demo-host', HOST_BIN, ['run', '--config', pipeline, '--web', path.join(web, 'public'), '--web-port', String(ports.http), '--ws-port', String(ports.ws)], {
      logDir: tmp,
      env: withoutBrokerUrl({ ...process.env, RUST_LOG: process.env.RUST_LOG || 'warn' }),
    });
    const address = await until(
      'the host to print the map address',
      () => {
        if (host.exitCode !== null) throw new Error(`host exited: ${tail(host.logFile, 8)}`);
        const match = fs.readFileSync(host.logFile, 'utf8').match(/Live map: open (http:\/\/[^\s]+)/);
        return match ? match[1] : null;
      },
      T_START,
    );
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
      timeout: 60_000,
    });
    const page = await browser.newPage({ viewport: { width: 1600, height: 900 } });
    const errors = [];
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    page.on('pageerror', (e) => errors.push(e.message));
    await check('demo: host run --web serves the map, live over the embedded broker', async () => {
      const res = await page.goto(address, { waitUntil: 'load', timeout: 60_000 });
      if (!res.ok()) throw new Error(`HTTP ${res.status()}`);
      await page.waitForFunction(() => document.getElementById('conn-text').textContent === 'connected', null, { timeout: T_DATA });
      await page.waitForFunction(() => document.querySelectorAll('path.quartier:not(.q-nodata)').length >= 15, null, { timeout: T_DATA });
      const url = await page.evaluate(() => window.garonne.config.mqttUrl);
      if (!url.includes(`:${ports.ws}`)) throw new Error(`the page connected to ${url}, not the embedded broker's WebSocket`);
      if (errors.length) throw new Error(errors.join(' | '));
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: path.join(ARTIFACTS, 'demo-map.png') });
      return `${address} → ${url}`;
    });
  } finally {
    if (browser) await browser.close().catch(() => {});
    await Promise.all([...children].map((c) => stopProcess(c)));
    if (results.some((r) => !r.ok)) console.log(`----- last lines of demo-host.log -----\n${tail(path.join(tmp, 'demo-host.log'))}`);
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

let stopping = false;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, async () => {
    stopping = true;
    console.log(`\n${sig}: stopping the services`);
    await Promise.all([...children].map((c) => stopProcess(c, 'SIGTERM', 2000)));
    process.exit(130);
  });
}

const watchdog = setTimeout(() => {
  console.log('FAIL  whole test — over 230 s: stopping');
  for (const c of children) c.kill('SIGKILL');
  process.exit(1);
}, 230_000);
watchdog.unref();

try {
  await main();
} catch (e) {
  record('setup', false, e.message);
}
try {
  await demoScenario();
} catch (e) {
  record('demo scenario', false, e.message);
}
const failed = results.filter((r) => !r.ok).length;
console.log(`\n${results.length - failed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
