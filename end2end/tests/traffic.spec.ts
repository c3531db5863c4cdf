// Issue 6, traffic: a real agent serves a file from a local origin twice
// (the first download fills its cache, the second is served from it). The
// Overview then shows the node healthy, the bytes served and saved, 50 %
// cache efficiency and charts with the traffic in them; the node's page
// its own; a chart's data downloads as CSV. With JavaScript, hovering a
// chart shows a point's values, and times follow the browser's time zone
// (Europe/Berlin here); without, they are in UTC and say so. Screenshots of
// the dashboards are kept with the test results.

import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from '@playwright/test';
import { cleanUpAgentLab, expect, portalUrl, seedOrganization, test, useFreshPortal } from './fixtures';
import { agentBinary, fetchThrough, pinOf, runAgent, startOrigin, ORIGIN_HOST, type Origin, type RunningAgent } from './agent';

useFreshPortal({ args: ['--report-interval-secs', '1', '--config-poll-secs', '1'] });
test.use({ timezoneId: 'Europe/Berlin' });

const ADMIN = { username: 'tessa', password: 'tessa-admin-pass-1' };
const VIEWER = { username: 'theo', password: 'theo-viewer-pass-1' };
const NODE = 'edge8';
/** 3 MiB: three of the agent's 1 MiB slices. */
const FILE_BYTES = 3 * 1024 * 1024;

let work: string;
let origin: Origin;
let agent: RunningAgent | undefined;

/**
 * Everything before the browser: the node (created through the portal's
 * own form endpoints), its agent registered and running, and two downloads
 * through it, the second a cache hit. Waits until the portal has the
 * agent's report of both.
 */
test.beforeAll(async () => {
  const binary = agentBinary();
  await seedOrganization('Traffic Test ISP', ADMIN, VIEWER);
  work = mkdtempSync(join(tmpdir(), 'lastmile-e2e-traffic-'));
  origin = await startOrigin({ 'office-update.cab': FILE_BYTES });
  const drive = join(work, 'cache');
  mkdirSync(drive);

  const url = portalUrl();
  const admin = await request.newContext({ baseURL: url, ignoreHTTPSErrors: true });
  const post = async (path: string, form: Record<string, string>) => {
    const response = await admin.post(path, { form, headers: { Accept: 'application/json' } });
    expect(response.ok(), `${path}: ${response.status()} ${await response.text()}`).toBe(true);
    return response.json().catch(() => null);
  };
  await post('/api/login', { username: ADMIN.username, password: ADMIN.password });
  await post('/api/create_node', {
    name: NODE,
    public_ipv4: '127.0.0.1',
    max_egress_mbps: '1000',
    enabled: 'on',
    drives: `${drive} 1`,
    extra_hosts: ORIGIN_HOST,
  });
  await post('/api/save_manual_routing', { name: NODE, prefixes: '10.9.0.0/16' });
  const issued = await post('/api/issue_registration_key', { name: NODE });
  const pin = pinOf(issued.install_command);

  const state = join(work, 'state');
  const registered = spawnSync(binary, ['register', '--portal', url, '--pin', pin, '--state-dir', state], {
    encoding: 'utf8',
    env: { ...process.env, LASTMILE_REGISTRATION_KEY: issued.key },
  });
  expect(registered.status, `${registered.stdout}${registered.stderr}`).toBe(0);
  agent = await runAgent(binary, state, origin);

  const node = async () => (await post('/api/node', { name: NODE })) as {
    state: string;
    config_state: string;
    health: { serving: boolean };
    totals: { hit_bytes: number; miss_bytes: number };
  };
  await expect
    .poll(async () => {
      const n = await node();
      return `${n.state} ${n.config_state} ${n.health.serving}`;
    }, { timeout: 30_000 })
    .toBe('online applied true');
  // Steering must have seen the node healthy before the client asks it.
  await expect
    .poll(async () => {
      const answer = await admin.get('/api/v1/steer?client=10.9.1.2');
      return (await answer.json()).nodes?.[0]?.name;
    }, { timeout: 20_000 })
    .toBe(NODE);

  const download = join(work, 'downloads', 'office-update.cab');
  const first = await fetchThrough(binary, url, pin, origin, 'office-update.cab', '10.9.1.2', download);
  expect(first).toContain(`from node ${NODE}: 3.0 MiB`);
  const afterFirst = origin.bytesSent();
  expect(afterFirst).toBeGreaterThanOrEqual(FILE_BYTES);
  const second = await fetchThrough(binary, url, pin, origin, 'office-update.cab', '10.9.1.3', download);
  expect(second).toContain(`from node ${NODE}: 3.0 MiB`);
  // The second download came from the cache: the origin sent at most a
  // probe's byte or two more.
  expect(origin.bytesSent() - afterFirst).toBeLessThan(1024);
  await expect
    .poll(async () => {
      const n = await node();
      return n.totals.hit_bytes >= FILE_BYTES && n.totals.miss_bytes >= FILE_BYTES;
    }, { timeout: 20_000 })
    .toBe(true);
  await admin.dispose();
});

cleanUpAgentLab(() => ({ agent, origin, work }));

const stat = (page: import('@playwright/test').Page, name: string) => page.locator(`dd[data-stat="${name}"]`);

test('the Overview shows the fleet healthy, the traffic, and the cache efficiency', async ({ page, ui }, testInfo) => {
  await ui.signIn(ADMIN.username, ADMIN.password);
  await expect(page).toHaveURL(/\/$/);
  await ui.open('/?range=1h');

  await expect(page.locator('li[data-stat="healthy"] .value')).toHaveText('1');
  await expect(page.locator('li[data-stat="unhealthy"] .value')).toHaveText('0');
  // 3 MiB from the origin first, then 3 MiB from the cache: half of all
  // bytes served were saved upstream.
  await expect(stat(page, 'efficiency')).toHaveText('50.0 %');
  await expect(stat(page, 'served')).toHaveText('6.3 MB');
  await expect(stat(page, 'saved')).toHaveText('3.1 MB');
  await expect(stat(page, 'origin')).toHaveText('3.1 MB');
  await expect(stat(page, 'peak-egress')).toContainText(/\d+(\.\d)? [kMG]bit\/s/);
  // The host is not one of the known update families: all of it is "other".
  await expect(page.locator('tr[data-family="other"] td').nth(2)).toHaveText('100.0 %');
  await expect(page.locator('tr[data-family="windows_update"] td').nth(1)).toHaveText('0 B');

  // Three charts, each with its data to download, none empty.
  for (const chart of ['egress', 'efficiency', 'families']) {
    const figure = page.locator(`#chart-${chart}`);
    await expect(figure.locator('svg')).toBeVisible();
    await expect(figure.locator('text.empty')).toHaveCount(0);
    await expect(figure.getByRole('link', { name: 'CSV' })).toHaveAttribute('href', new RegExp(`^/traffic\\.csv\\?chart=${chart}&range=1h`));
    await expect(figure.getByRole('link', { name: 'JSON' })).toBeVisible();
  }
  await expect(page.locator('#chart-egress svg text', { hasText: /bit\/s$/ }).first()).toBeVisible();
  await expect(page.locator('#chart-efficiency svg text', { hasText: '100 %' })).toBeVisible();
  await expect(page.locator('#chart-families svg text', { hasText: /B$/ }).first()).toBeVisible();

  const zone = page.locator('.range-description .time-zone');
  if (ui.js) {
    // Once hydrated, the page asks again in the browser's time zone, and
    // hovering a point shows its values on a crosshair.
    await expect(zone).toHaveText('Europe/Berlin');
    const busy = page.locator('#chart-egress rect[data-i]').filter({ hasNot: page.locator('title', { hasText: 'Egress: 0 bit/s' }) });
    await busy.first().hover();
    await expect(page.locator('#chart-egress .crosshair')).toBeVisible();
    await expect(page.locator('#chart-egress p.readout')).toContainText(/Egress: \d+(\.\d)? [kMG]bit\/s/);
  } else {
    // Without JavaScript the server does not know the zone: UTC, said so,
    // and each point's values are a native tooltip.
    await expect(zone).toHaveText('UTC');
    await expect(page.locator('#chart-egress rect[data-i] title').first()).toHaveText(/ · Egress: .* · Origin ingress: /);
  }
  await ui.screenshot('traffic-dashboard');
  await testInfo.attach('traffic dashboard', { body: await page.screenshot({ fullPage: true }), contentType: 'image/png' });
});

test('the node\'s page shows its own traffic beside its state and config; ranges are links', async ({ page, ui }) => {
  await ui.signIn(VIEWER.username, VIEWER.password);
  await expect(page).toHaveURL(/\/$/);
  await ui.open(`/nodes/${NODE}`);
  await expect(page.locator('dd.state')).toContainText('online');
  await expect(page.locator('dd.config')).toContainText('applied');
  // The default range is the last day.
  await expect(page.getByRole('link', { name: '1 d', exact: true })).toHaveAttribute('aria-current', 'page');
  await expect(stat(page, 'efficiency')).toHaveText('50.0 %');

  await page.getByRole('link', { name: '12 h', exact: true }).click();
  await expect(page).toHaveURL(new RegExp(`/nodes/${NODE}\\?range=12h`));
  await expect(page.locator('.range-description')).toContainText('Last 12 hours');
  await expect(page.getByRole('link', { name: '12 h', exact: true })).toHaveAttribute('aria-current', 'page');
  await expect(stat(page, 'served')).toHaveText('6.3 MB');
  await expect(page.locator('#chart-families .exports a', { hasText: 'JSON' })).toHaveAttribute('href', /node=edge8/);
  await ui.screenshot('node-traffic');

  // A custom range that ends before it starts is refused with the reason.
  await ui.open(`/nodes/${NODE}?range=custom&from=2025-11-20T10:00&to=2025-11-20T09:00`);
  await expect(page.getByRole('alert')).toContainText('must end after it starts');
  await expect(page.locator('details.custom-range')).toHaveAttribute('open', '');
});

test('a chart\'s data downloads as CSV with the bytes the chart shows', async ({ page, ui }) => {
  await ui.signIn(ADMIN.username, ADMIN.password);
  await expect(page).toHaveURL(/\/$/);
  await ui.open('/?range=1h');
  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.locator('#chart-efficiency').getByRole('link', { name: 'CSV' }).click(),
  ]);
  expect(download.suggestedFilename()).toMatch(/^lastmile-fleet-efficiency-.*\.csv$/);
  const csv = readFileSync(await download.path(), 'utf8').trim().split('\n');
  expect(csv[0]).toBe('start,start_ms,seconds,hit_bytes,miss_bytes,efficiency');
  const rows = csv.slice(1).map((line) => line.split(','));
  expect(rows.length).toBeGreaterThanOrEqual(60);
  const total = (column: number) => rows.reduce((sum, r) => sum + Number(r[column]), 0);
  // Every byte of both downloads, half of it from the cache.
  expect(total(3)).toBe(FILE_BYTES);
  expect(total(3) + total(4)).toBe(2 * FILE_BYTES);
});
