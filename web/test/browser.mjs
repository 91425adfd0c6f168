// The dashboard in a real browser: starts `berth serve --dev` on a loopback port with its own
// data directory, registers a GPU host through the API (its agent is this script: it heartbeats
// with usage figures) with whole, shared and MIG GPUs and FPGAs, and more hosts and workloads
// than a page holds, then drives Debian's chromium through puppeteer-core: a bad token is
// refused, each view shows the objects made here, the host and workload tables page through the
// server's lists and filter there, the GPU map lists every device with what each holder holds,
// an action (stop, confirmed) works, live updates arrive without a reload, and the Simulator runs
// a comparison to its charts. Screenshots of every view go to the directory given as
// BERTH_UI_ARTIFACTS. Every process it starts is stopped at the end.
//
// Usage: BERTH_BINARY=build/main/berth BERTH_UI_ARTIFACTS=build/ui-screenshots \
//        [BERTH_CHROMIUM=/usr/bin/chromium] node web/test/browser.mjs
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer from 'puppeteer-core';

const binary = process.env.BERTH_BINARY;
const artifacts = process.env.BERTH_UI_ARTIFACTS;
const chromium = process.env.BERTH_CHROMIUM || '/usr/bin/chromium';
if (!binary || !artifacts) throw new Error('set BERTH_BINARY and BERTH_UI_ARTIFACTS');
if (!existsSync(chromium)) throw new Error(`no browser at ${chromium}: scripts/setup.sh installs Debian's chromium`);
mkdirSync(artifacts, { recursive: true });

// Generous: the test fails only when something never happens, not when the machine is slow.
const kWait = 60000;
const dir = mkdtempSync(join(tmpdir(), 'berth-ui-'));
let server = null;
let browser = null;
let beat = null;
let serverLog = '';
const started = Date.now();
const step = (what) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)}s] ${what}`);

async function until(what, fn, ms = kWait) {
  const deadline = Date.now() + ms;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`never happened: ${what} (last: ${last})`);
}

function readToken(name) {
  return readFileSync(join(dir, name), 'utf8').trim();
}

let url = '';
async function api(method, path, token, body) {
  const res = await fetch(url + path, {
    method,
    headers: { Authorization: `Bearer ${token}`, ...(body ? { 'Content-Type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

async function main() {
  step('starting berth serve --dev');
  server = spawn(binary, ['serve', '--dev', '--data-dir', dir, '--listen', '127.0.0.1:0', '--host-ttl', '60s'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  server.stdout.on('data', (d) => (serverLog += d));
  server.stderr.on('data', (d) => (serverLog += d));
  const info = await until('server.json', () => {
    const p = join(dir, 'server.json');
    if (!existsSync(p)) return null;
    const j = JSON.parse(readFileSync(p, 'utf8'));
    return j.pid === server.pid ? j : null;
  });
  url = info.url;
  const admin = readToken('admin.token');
  const reader = readToken('read.token');
  await until('the local agent registers', async () => (await api('GET', '/v1/hosts', admin)).items.length >= 1);
  const local = (await api('GET', '/v1/hosts', admin)).items[0].name;

  step('registering a GPU host and creating workloads');
  const reg = await api('POST', '/v1/hosts', readToken('join.token'), {
    name: 'gpu-a',
    inventory: {
      cpu: '16', memory: '64Gi', disk: '100Gi', drivers: ['process'], labels: { pool: 'gpu' },
      gpus: [
        { index: 0, uuid: 'GPU-00000000-0000-4000-8000-0000000000a0', model: 'A100-SXM4-80GB', memory: '80Gi' },
        { index: 1, uuid: 'GPU-00000000-0000-4000-8000-0000000000a1', model: 'A100-SXM4-80GB', memory: '80Gi' },
        {
          index: 2, uuid: 'GPU-00000000-0000-4000-8000-0000000000a2', model: 'A100-SXM4-80GB', memory: '80Gi',
          mig_enabled: true,
          mig_instances: [
            { profile: '3g.40gb', start_slice: 0, uuid: 'MIG-00000000-0000-4000-8000-0000000000b0' },
            { profile: '3g.40gb', start_slice: 4, uuid: 'MIG-00000000-0000-4000-8000-0000000000b4' },
          ],
        },
      ],
      devices: [
        { class: 'xilinx.com/fpga', id: 'u250-0' },
        { class: 'xilinx.com/fpga', id: 'u250-1', healthy: false, health: 'device node /dev/xclmgmt1 is gone' },
      ],
    },
  });
  const usage = { cpu: '3', memory: '10Gi', gpus: [{ index: 0, utilization_percent: 87, memory_used: '40Gi' }] };
  const heartbeat = () => api('PUT', '/v1/hosts/gpu-a/heartbeat', reg.credential, { usage });
  await heartbeat();
  beat = setInterval(() => heartbeat().catch(() => {}), 5000);
  // The hosts made to fill pages (pool=page) have no agent either: nothing is placed there.
  const local_only = [{ label: 'pool', op: 'not_in', values: ['gpu', 'page'] }];
  await api('POST', '/v1/workloads', admin, {
    name: 'hello', kind: 'process', command: ['/bin/sh', '-c', 'echo hello from berth; sleep 3600'],
    resources: { cpu: '100m', memory: '32Mi' }, constraints: local_only,
  });
  await api('POST', '/v1/workloads', admin, {
    name: 'trainer', kind: 'process', command: ['/bin/true'],
    resources: { cpu: '2', memory: '1Gi', gpu: { count: 1 } },
  });
  await api('POST', '/v1/workloads', admin, {
    name: 'huge', kind: 'process', command: ['/bin/true'], resources: { cpu: '64', memory: '32Mi' },
    constraints: local_only,
  });
  await until('hello runs', async () => (await api('GET', '/v1/workloads/hello', admin)).status.state === 'running');
  await until('trainer is placed on gpu-a', async () => (await api('GET', '/v1/workloads/trainer', admin)).status.host === 'gpu-a');
  // A half share of one GPU, a MIG slice of the MIG-mode one, and an FPGA.
  await api('POST', '/v1/workloads', admin, {
    name: 'sharer', kind: 'process', command: ['/bin/true'],
    resources: { cpu: '1', memory: '1Gi', gpu: { share: '500m', memory: '10Gi' } },
  });
  await api('POST', '/v1/workloads', admin, {
    name: 'miger', kind: 'process', command: ['/bin/true'],
    resources: { cpu: '1', memory: '1Gi', gpu: { mig: '3g.40gb' } },
  });
  await api('POST', '/v1/workloads', admin, {
    name: 'synth', kind: 'process', command: ['/bin/true'],
    resources: { cpu: '1', memory: '1Gi' }, devices: [{ class: 'xilinx.com/fpga', count: 1 }],
  });
  for (const w of ['sharer', 'miger', 'synth']) {
    await until(`${w} is placed on gpu-a`, async () => (await api('GET', `/v1/workloads/${w}`, admin)).status.host === 'gpu-a');
  }
  // More hosts than a page of 25 holds.
  const kPageHosts = 30;
  for (let i = 0; i < kPageHosts; i++) {
    await api('POST', '/v1/hosts', readToken('join.token'), {
      name: `page-${String(i).padStart(2, '0')}`,
      inventory: { cpu: '4', memory: '8Gi', disk: '10Gi', drivers: ['process'], labels: { pool: 'page' } },
    });
  }
  const kHosts = kPageHosts + 2;

  step('starting chromium');
  browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    userDataDir: join(dir, 'chromium'),
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'],
  });
  const page = await browser.newPage();
  await page.setViewport({ width: 1280, height: 900 });
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  // The first screen of each view: readable at a glance, whatever the length of the page.
  const shot = (name) => page.screenshot({ path: join(artifacts, `${name}.png`) });
  const waitText = (what, selector = 'body') =>
    page.waitForFunction(
      (s, w) => document.querySelector(s) && document.querySelector(s).innerText.includes(w),
      { timeout: kWait }, selector, what);
  const view = async (id) => {
    await page.click(`#nav-${id}`);
    await page.waitForSelector(`#view-${id}`, { timeout: kWait });
  };

  step('a bad token is refused');
  await page.goto(`${url}/ui/`);
  await page.waitForSelector('#token', { timeout: kWait });
  await page.type('#token', 'not-a-token');
  await page.click('#signin-button');
  await waitText('refused', '#signin-error');
  if (await page.evaluate(() => sessionStorage.getItem('berth.token'))) throw new Error('a refused token was kept');
  await shot('signin-refused');

  step('sign in');
  await page.click('#token', { clickCount: 3 });
  await page.type('#token', admin);
  await page.click('#signin-button');
  await page.waitForSelector('#view-cluster', { timeout: kWait });
  if (page.url().includes(admin)) throw new Error('the token is in the URL');

  step('cluster');
  await waitText(`Hosts (${kHosts})`, '#view-cluster');
  await waitText('Workloads (6)', '#view-cluster');
  // GPUs: a whole one, half of one and a 3g.40gb slice (3 of 7 compute slices) of three.
  await waitText('allocated 1.93 of 3', '#view-cluster');
  await waitText('mean utilization (87%)', '#view-cluster'); // the agent's report, through the summary
  await waitText('Fragmentation as berth sim fill measures it', '#view-cluster');
  await waitText('Stranded GPU share: 100%', '#view-cluster'); // all free GPU is on gpu-a's shared devices
  await shot('cluster');

  step('hosts: the table pages through the list of the server, which filters it');
  await view('hosts');
  await waitText('gpu-a', '#hosts-table');
  await waitText(local, '#hosts-table');
  await waitText('5/16', '#hosts-table');
  await waitText(`${kHosts} of ${kHosts} on this page`, '#hosts-table');
  await shot('hosts');
  const rows = (id) => page.$$eval(`#${id} tbody tr[data-key]`, (r) => r.map((x) => x.dataset.key));
  await page.select('#hosts-table-size', '25');
  await waitText('1–25, more follow', '#hosts-table-page');
  await waitText('25 of 25 on this page', '#hosts-table');
  const firstPage = await rows('hosts-table');
  await page.click('#hosts-table-next');
  await waitText(`page 2 · 26–${kHosts}`, '#hosts-table-page');
  await waitText(`${kHosts - 25} of ${kHosts - 25} on this page`, '#hosts-table');
  const secondPage = await rows('hosts-table');
  const seen = new Set([...firstPage, ...secondPage]);
  if (firstPage.length !== 25 || seen.size !== kHosts) {
    throw new Error(`the host pages hold ${firstPage.length} and ${secondPage.length} rows, ${seen.size} distinct; want 25 and ${kHosts - 25}`);
  }
  await shot('hosts-page-2');
  await page.click('#hosts-table-prev');
  await waitText('page 1 · 1–25', '#hosts-table-page');
  // A server-side filter: names starting "page-1" (page-10 .. page-19), one page.
  await page.type('#hosts-prefix', 'page-1');
  await page.keyboard.press('Enter');
  await waitText('page 1 · 1–10', '#hosts-table-page');
  const filtered = await rows('hosts-table');
  if (filtered.length !== 10 || !filtered.every((n) => n.startsWith('page-1'))) {
    throw new Error(`prefix page-1 shows ${filtered.join(',')}`);
  }
  await page.click('#hosts-prefix', { clickCount: 3 });
  await page.keyboard.press('Backspace');
  await page.keyboard.press('Enter');
  await waitText('1–25, more follow', '#hosts-table-page');

  step('host: the GPU map and every device with its holders');
  await page.click('#hosts-table tr[data-key="gpu-a"]');
  await page.waitForSelector('#view-host .gpu-map', { timeout: kWait });
  await waitText('trainer', '#view-host .gpu-map');
  await waitText('utilization 87%', '#view-host');
  await waitText('whole device', '#device-list');
  await waitText('sharer (share 0.5, 10Gi)', '#device-list');
  await waitText('miger (MIG 3g.40gb (slice', '#device-list');
  await waitText('xilinx.com/fpga', '#device-list');
  await waitText('synth', '#device-list');
  await waitText('unhealthy: device node /dev/xclmgmt1 is gone', '#device-list');
  await waitText('GPU-00000000-0000-4000-8000-0000000000a2', '#device-list');
  await waitText('40Gi', '#device-list'); // GPU 0's memory in use, as the agent reported it
  const devices = await page.$$eval('#device-list tbody tr[data-device]', (r) => r.length);
  if (devices !== 5) throw new Error(`the device list has ${devices} rows; want 3 GPUs and 2 FPGAs`);
  await page.waitForSelector('#usage-chart canvas', { timeout: kWait }); // the usage history
  await shot('host-gpu-map');

  step('workloads: pages from the server, only the rows in view rendered, live');
  const kBulk = 40;
  for (let i = 0; i < kBulk; i++) {
    await api('POST', '/v1/workloads', admin, {
      name: `z-bulk-${String(i).padStart(2, '0')}`, kind: 'process', command: ['/bin/true'],
      resources: { cpu: '64', memory: '32Mi' }, constraints: local_only,
    });
  }
  const kWorkloads = kBulk + 6;
  await view('workloads');
  for (const w of ['hello', 'trainer', 'huge']) await waitText(w, '#workloads-table');
  await waitText(`${kWorkloads} of ${kWorkloads} on this page`, '#workloads-table');
  const rendered = await page.$$eval('#workloads-table tbody tr[data-key]', (rows) => rows.length);
  if (rendered >= kWorkloads) throw new Error(`all ${rendered} rows rendered: the table is not windowed`);
  await shot('workloads');
  await page.select('#workloads-table-size', '25');
  await waitText('1–25, more follow', '#workloads-table-page');
  await page.click('#workloads-table-next');
  await waitText(`page 2 · 26–${kWorkloads}`, '#workloads-table-page');
  await waitText(`${kWorkloads - 25} of ${kWorkloads - 25} on this page`, '#workloads-table');
  await waitText('z-bulk-39', '#workloads-table');
  await page.click('#workloads-table-prev');
  await waitText('page 1 · 1–25', '#workloads-table-page');
  // A workload made now shows up on the page in view, through its blocking query.
  await api('POST', '/v1/workloads', admin, {
    name: 'a-live', kind: 'process', command: ['/bin/true'], resources: { cpu: '64', memory: '32Mi' },
    constraints: local_only,
  });
  await waitText('a-live', '#workloads-table');
  // Filtered by the server: the pending ones only.
  await page.select('#workloads-state', 'pending');
  await waitText('page 1 · 1–25, more follow', '#workloads-table-page');
  await until('only pending rows', async () => {
    const states = await page.$$eval('#workloads-table tbody tr[data-key] td:nth-child(3)', (r) => r.map((x) => x.innerText));
    return states.length === 25 && states.every((t) => t.trim() === 'pending');
  });
  await shot('workloads-pending-filter');
  await page.select('#workloads-state', '');

  step('pending, with its explanation');
  await view('pending');
  await waitText(`Pending (${kBulk + 2})`, '#view-pending'); // huge, a-live and the bulk
  await waitText('huge', '#view-pending');
  await waitText('cpu: asks 64, best host has', '#view-pending');
  await waitText('page 1 · 1–25, more follow', '#pending-page');
  await shot('pending');

  step('disks and networks');
  await api('POST', '/v1/disks', admin, { name: 'scratch', size: '16Mi', format: 'qcow2' });
  await view('storage');
  await waitText('scratch', '#disks-table');
  await page.click('#disks-table tr[data-key="scratch"]'); // its details
  await waitText('"size_mib": 16', '#view-storage');
  await page.waitForSelector('#networks-table', { timeout: kWait });
  await shot('storage');

  step('events, live');
  await view('events');
  await waitText('hello', '#events-table');
  await api('POST', '/v1/workloads', admin, {
    name: 'late', kind: 'process', command: ['/bin/true'], resources: { cpu: '64', memory: '32Mi' },
    constraints: local_only,
  });
  await waitText('late', '#events-table');
  await shot('events');

  step('services: the table beside the workloads');
  await api('POST', '/v1/services', admin, {
    name: 'web-svc', replicas: 0, port: 8080,
    template: { kind: 'process', command: ['/bin/true'], resources: { cpu: '100m', memory: '32Mi' } },
  });
  await view('workloads');
  await waitText('web-svc', '#services-table');
  await waitText('0/0', '#services-table');

  step('jobs: the table beside the services, a click lists the tasks');
  await api('POST', '/v1/jobs', admin, {
    name: 'train-job', kind: 'job', parallelism: 2,
    template: { kind: 'process', command: ['/bin/true'], resources: { cpu: '100m', memory: '32Mi' }, constraints: local_only },
  });
  await until('train-job succeeds', async () => (await api('GET', '/v1/jobs/train-job', admin)).status.state === 'succeeded');
  await waitText('succeeded', '#jobs-table');
  await page.click('#jobs-table tr[data-key="train-job"]');
  await waitText('train-job-0', '#job-tasks');
  await waitText('exit 0', '#job-tasks');
  await shot('jobs');

  step('workload detail: logs, then stop behind a confirmation');
  await page.evaluate(() => (window.location.hash = '#/workloads/hello'));
  await waitText('running', '#workload-state');
  await waitText('hello from berth', '#logs');
  // Its stats: CPU and memory, and storage throughput from the process's I/O counters.
  await page.waitForSelector('#stats-chart canvas', { timeout: kWait });
  await page.waitForSelector('#io-chart canvas', { timeout: kWait });
  await waitText('disk read (MiB/s)', '#io-chart');
  await shot('workload-detail');
  await page.click('button[data-action="stop"]');
  await page.waitForSelector('#confirm', { timeout: kWait });
  await shot('workload-confirm');
  await page.click('#confirm-yes');
  await waitText('stopped', '#workload-state'); // the blocking query brings the new state
  const state = (await api('GET', '/v1/workloads/hello', admin)).status.state;
  if (state !== 'stopped') throw new Error(`hello is ${state} after stop`);
  await shot('workload-stopped');

  step('simulator: a mistake names its field, then a comparison on the live cluster');
  await view('simulator');
  await page.waitForSelector('#sim-cluster option[value="openb"]', { timeout: kWait });
  await page.select('#sim-cluster', 'live');
  await page.select('#sim-trace', 'default');
  const retype = async (selector, text) => {
    await page.click(selector, { clickCount: 3 });
    await page.type(selector, text);
  };
  await retype('#sim-requests', '300');
  await retype('#sim-policies', 'default,first-fit');
  await retype('#sim-seeds', '1..100');
  await page.click('#sim-run');
  await waitText('seeds', '#sim-error');
  await retype('#sim-seeds', '1..2');
  await page.click('#sim-run');
  await waitText('done', '#sim-state');
  await waitText('first-fit', '#sim-summary');
  await page.waitForSelector('#sim-chart canvas', { timeout: kWait });
  await page.waitForSelector('#sim-chart-zoom canvas', { timeout: kWait });
  await waitText('live', '#sim-past');
  await shot('simulator');

  step('the read-only token watches but cannot act');
  await page.click('#signout');
  await page.waitForSelector('#token', { timeout: kWait });
  await page.type('#token', reader);
  await page.click('#signin-button');
  await page.waitForSelector('#nav-cluster', { timeout: kWait });
  await page.evaluate(() => (window.location.hash = '#/workloads/hello'));
  await waitText('stopped', '#workload-state');
  await page.click('button[data-action="start"]');
  await page.click('#confirm-yes');
  await waitText('refused', '#action-result');
  await shot('read-only-refused');

  if (pageErrors.length) throw new Error(`errors in the page: ${pageErrors.join('; ')}`);
  step(`done; screenshots in ${artifacts}`);
}

// Stops every workload (their processes outlive the server otherwise: an agent re-adopts them
// after a restart), then the server; the disk's file lies in the data directory, removed last.
async function cleanup() {
  if (beat) clearInterval(beat);
  if (browser) await browser.close().catch(() => {});
  if (server && server.exitCode === null && url) {
    try {
      const admin = readToken('admin.token');
      const live = new Set(['scheduled', 'starting', 'running', 'paused', 'stopping']);
      for (const w of (await api('GET', '/v1/workloads', admin)).items) {
        if (w.status.state !== 'stopped' && w.status.state !== 'failed') {
          await api('POST', `/v1/workloads/${w.name}/actions/stop`, admin).catch(() => {});
        }
      }
      // Workloads on gpu-a have no agent to stop them; only the local host's matter here.
      await until('the local workloads stop', async () =>
        (await api('GET', '/v1/workloads', admin)).items.every(
          (w) => w.status.host === 'gpu-a' || !live.has(w.status.state)), 30000);
    } catch (e) {
      console.error(`cleanup: ${e}`);
    }
  }
  if (server && server.exitCode === null) {
    const exited = new Promise((r) => server.once('exit', r));
    try {
      process.kill(-server.pid, 'SIGTERM');
    } catch {
      // already gone
    }
    const timer = setTimeout(() => {
      try {
        process.kill(-server.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }, 30000);
    await exited;
    clearTimeout(timer);
  }
  rmSync(dir, { recursive: true, force: true });
}

let failed = false;
try {
  await main();
} catch (e) {
  failed = true;
  console.error(`FAILED: ${e && e.stack ? e.stack : e}`);
  console.error(`server log (last 4000 bytes):\n${serverLog.slice(-4000)}`);
}
await cleanup();
process.exit(failed ? 1 : 0);
