// Issue 4, a real node agent: an operator provisions a node with the very
// install command its page shows (run as an operator pastes it, with
// `--root` appended so it installs into a test folder instead of /), the
// installed agent comes online, steering sends a subscriber in the node's
// block to it, and once the agent stops the node goes offline and the
// subscriber goes to the CDN. One story on one fresh portal that wants
// reports and polls every second, in order.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cleanUpAgentLab, expect, seedOrganization, test, useFreshPortal, type Ui } from './fixtures';
import { agentBinary, runAgent, startOrigin, ORIGIN_HOST, type Origin, type RunningAgent } from './agent';

useFreshPortal({ args: ['--report-interval-secs', '1', '--config-poll-secs', '1'] });

const ADMIN = { username: 'oscar', password: 'oscar-admin-pass-1' };
const VIEWER = { username: 'vicky', password: 'vicky-viewer-pass-1' };
const NODE = 'edge7';
const SUBSCRIBER = '10.9.1.2';

let work: string;
let origin: Origin;
let agent: RunningAgent | undefined;

test.beforeAll(async () => {
  // Fails at once, with what to do, when the agent was not built.
  agentBinary();
  await seedOrganization('Agent Test ISP', ADMIN, VIEWER);
  work = mkdtempSync(join(tmpdir(), 'lastmile-e2e-agent-'));
  origin = await startOrigin({ 'update.cab': 1024 * 1024 });
});

cleanUpAgentLab(() => ({ agent, origin, work }));

/** The node's row in the node list, reloaded until its state and config read as given. */
async function waitInNodeList(ui: Ui, state: string, config: string): Promise<void> {
  await ui.open('/nodes');
  const row = ui.page.getByRole('row').filter({ hasText: NODE });
  await expect(async () => {
    await ui.reload();
    await expect(row.locator('td.state')).toHaveText(state, { timeout: 1_000 });
    await expect(row.locator('td.config')).toHaveText(config, { timeout: 1_000 });
  }).toPass({ timeout: 30_000 });
}

test('an operator provisions a node with the install command from its page, and it comes online', async ({ page, ui }) => {
  await ui.signIn(ADMIN.username, ADMIN.password);
  await expect(page).toHaveURL(/\/$/);

  // The node's cache folder is the operator's to create before the agent
  // applies its configuration.
  const drive = join(work, 'cache1');
  mkdirSync(drive, { recursive: true });
  await ui.open('/nodes/new');
  await page.getByLabel(/^Name/).fill(NODE);
  await page.getByLabel('Public IPv4 address of the server').fill('127.0.0.1');
  await page.getByLabel('Maximum egress (Mbps)').fill('1000');
  await page.getByLabel(/^Cache drives/).fill(`${drive} 1`);
  await page.getByLabel(/^Added content hosts/).fill(ORIGIN_HOST);
  await ui.submit(page.getByRole('button', { name: 'Create node' }));
  await expect(page).toHaveURL(new RegExp(`/nodes/${NODE}$`));

  await page.getByLabel('IPv4 CIDR blocks, one a line or separated by commas').fill('10.9.0.0/16');
  await ui.submit(page.getByRole('button', { name: 'Save blocks' }));
  await expect(page.locator('ul.prefixes li')).toHaveText(['10.9.0.0/16']);

  await ui.submit(page.getByRole('button', { name: 'Issue registration key' }));
  const field = page.getByRole('textbox', { name: 'Install command' });
  await expect(field).toBeVisible();
  let command: string;
  if (ui.js) {
    // Copied the way an operator copies it.
    await page.getByRole('button', { name: 'Copy command' }).click();
    await expect(page.getByRole('button', { name: 'Copied' })).toBeVisible();
    command = await page.evaluate(() => navigator.clipboard.readText());
  } else {
    command = await field.inputValue();
  }
  expect(command).toContain('sudo');
  expect(command).toContain('curl');

  // Pasted into a shell on "the server", installing under a test root
  // (no systemd unit is started there).
  const root = join(work, 'root');
  const installed = spawnSync('bash', ['-c', `${command} --root '${root}'`], { encoding: 'utf8', timeout: 60_000 });
  const said = `${installed.stdout}${installed.stderr}`;
  expect(installed.status, said).toBe(0);
  expect(said).toContain(`Registered as node ${NODE} of Agent Test ISP`);
  expect(said).toContain('Installed.');
  const binary = join(root, 'usr/local/bin/lastmile-agent');
  expect(existsSync(binary)).toBe(true);
  expect(existsSync(join(root, 'etc/systemd/system/lastmile-agent.service'))).toBe(true);

  // The installed agent, run as its service would run it.
  agent = await runAgent(binary, join(root, 'var/lib/lastmile'), origin);
  await waitInNodeList(ui, 'online', 'applied');
  await ui.screenshot('provisioned-node-online');

  // Its page: the report after the configuration was applied says the
  // data path serves, and nothing is wrong.
  await ui.open(`/nodes/${NODE}`);
  await expect(async () => {
    await ui.reload();
    await expect(page.locator('dd.serving')).toContainText('yes', { timeout: 1_000 });
    await expect(page.locator('dd.problems')).toHaveText('none reported', { timeout: 1_000 });
  }).toPass({ timeout: 20_000 });
});

test('a subscriber in the node\'s block is steered to it, one outside it to the CDN', async ({ page, ui }) => {
  await ui.signIn(ADMIN.username, ADMIN.password);
  await expect(page).toHaveURL(/\/$/);
  const answer = page.locator('#steer-answer');
  // Steering reads node health every second: ask until it has seen the node.
  await expect(async () => {
    await ui.open(`/steering?client=${SUBSCRIBER}`);
    await expect(answer).toContainText(`downloads from node ${NODE}`, { timeout: 1_000 });
  }).toPass({ timeout: 20_000 });
  await expect(answer).toContainText('10.9.0.0/16');
  await expect(page.locator('tr[data-node] td').last()).toHaveText('chosen');
  await ui.screenshot('steered-to-node');

  // Looked up through the form as well, for an address no node serves.
  await page.getByLabel('Subscriber IPv4 address').fill('192.0.2.55');
  await ui.submit(page.getByRole('button', { name: 'Look up' }));
  await expect(page).toHaveURL(/client=192\.0\.2\.55/);
  await expect(answer).toHaveText('No healthy node serves 192.0.2.55: it downloads from the CDN.');
});

test('when the agent stops, the node goes offline and its subscribers go to the CDN', async ({ page, ui }) => {
  await ui.signIn(ADMIN.username, ADMIN.password);
  await expect(page).toHaveURL(/\/$/);
  await agent!.stop();
  // No report for three intervals (three seconds here): offline.
  await waitInNodeList(ui, 'offline', 'applied');
  await ui.screenshot('node-offline');

  const answer = page.locator('#steer-answer');
  await expect(async () => {
    await ui.open(`/steering?client=${SUBSCRIBER}`);
    await expect(answer).toHaveText(`No healthy node serves ${SUBSCRIBER}: it downloads from the CDN.`, { timeout: 1_000 });
  }).toPass({ timeout: 20_000 });
  await expect(page.locator(`tr[data-node="${NODE}"]`)).toContainText('offline');
});
