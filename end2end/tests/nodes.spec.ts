// Issue 3, nodes in the portal: a node with two drives, manual CIDR blocks
// (a bad line is named and nothing is saved), BGP and back, a registration
// key and its install command, IPv6 refused where IPv4 is needed, and a
// viewer who sees all of it and can change none of it. One story on one
// fresh portal, in order.

import { expect, seedOrganization, test, useFreshPortal } from './fixtures';

useFreshPortal();

const ADMIN = { username: 'olivia', password: 'olivia-admin-pass-1' };
const VIEWER = { username: 'vera', password: 'vera-viewer-pass-1' };
const NODE = 'edge1';
// The blocks the CIDR test saves, as the portal shows them back.
const normalized = ['10.20.0.0/16', '192.0.2.0/24', '198.51.100.0/25', '198.51.100.128/25', '203.0.113.0/24'];

test.beforeAll(async () => {
  // Setup and people are accounts.spec.ts's story; here they are a given.
  await seedOrganization('Nodes Test ISP', ADMIN, VIEWER);
});

test('an operator adds a node with two drives; an IPv6 address is refused', async ({ page, ui }) => {
  await ui.signIn(ADMIN.username, ADMIN.password);
  await expect(page).toHaveURL(/\/$/);
  await ui.open('/nodes');
  await expect(page.getByText('No nodes yet.')).toBeVisible();
  await page.getByRole('link', { name: 'Add a node' }).click();
  await expect(page).toHaveURL(/\/nodes\/new$/);

  const fill = async (address: string) => {
    await page.getByLabel(/^Name/).fill(NODE);
    await page.getByLabel('Public IPv4 address of the server').fill(address);
    await page.getByLabel('Maximum egress (Mbps)').fill('2000');
    await page.getByLabel(/^Cache drives/).fill('/srv/cache1 500\n/srv/cache2 750');
  };
  const create = page.getByRole('button', { name: 'Create node' });

  await fill('2001:db8::10');
  await ui.submit(create);
  await expect(page.getByRole('alert')).toContainText('IPv6 is not supported yet');
  await expect(page.getByRole('alert')).toContainText('2001:db8::10');
  await expect(page).toHaveURL(/\/nodes\/new$/);
  // Nothing typed is lost, with JavaScript or without (the refused post
  // comes back filled in).
  await expect(page.getByLabel(/^Name/)).toHaveValue(NODE);
  await expect(page.getByLabel('Public IPv4 address of the server')).toHaveValue('2001:db8::10');
  await expect(page.getByLabel('Maximum egress (Mbps)')).toHaveValue('2000');
  await expect(page.getByLabel(/^Cache drives/)).toHaveValue('/srv/cache1 500\n/srv/cache2 750');
  await ui.screenshot('new-node-ipv6-refused');

  await fill('203.0.113.10');
  await ui.submit(create);
  await expect(page).toHaveURL(new RegExp(`/nodes/${NODE}$`));
  await expect(page.getByRole('heading', { name: `Node ${NODE}` })).toBeVisible();
  await expect(page.getByLabel(/^Cache drives/)).toHaveValue('/srv/cache1 500\n/srv/cache2 750');
  await expect(page.getByLabel('Public IPv4 address')).toHaveValue('203.0.113.10');

  // Until an agent reports, the list says so plainly: no placeholders.
  await ui.open('/nodes');
  const row = page.getByRole('row').filter({ hasText: NODE });
  await expect(row).toHaveCount(1);
  await expect(row.getByRole('cell')).toHaveText([NODE, '203.0.113.10', 'Manual CIDR', 'never connected', '—', 'pending']);
  await ui.screenshot('node-list');
});

test('pasted CIDR blocks: a bad line is named and nothing is saved; the fixed list comes back normalized', async ({ page, ui }) => {
  await ui.signIn(ADMIN.username, ADMIN.password);
  await expect(page).toHaveURL(/\/$/);
  await ui.open(`/nodes/${NODE}`);
  const blocks = page.getByLabel('IPv4 CIDR blocks, one a line or separated by commas');
  const save = page.getByRole('button', { name: 'Save blocks' });
  await expect(page.getByText('No blocks.')).toBeVisible();

  // Line 3 has host bits set.
  const pasted = '203.0.113.0/24\n198.51.100.0/25, 198.51.100.128/25\n192.0.2.7/24\n10.20.0.0/16';
  await blocks.fill(pasted);
  await ui.submit(save);
  await expect(page.getByRole('alert')).toHaveText(
    'Nothing was saved. Line 3, "192.0.2.7/24": host bits are set; the block is 192.0.2.0/24.',
  );
  await expect(page.getByText('No blocks.')).toBeVisible();
  // The pasted list is still there to fix: the form submitted in place, or
  // without JavaScript came back filled in.
  await expect(blocks).toHaveValue(pasted);
  await ui.screenshot('cidr-bad-line');
  // Nothing of the batch was saved, whatever the page still shows.
  await ui.reload();
  await expect(page.getByText('No blocks.')).toBeVisible();
  await expect(blocks).toHaveValue('');

  // Fixed, with stray spaces and commas: stored and shown one a line, in
  // address order.
  await blocks.fill(' 203.0.113.0/24\n198.51.100.0/25 ,198.51.100.128/25,\n192.0.2.0/24\n\n10.20.0.0/16 ');
  await ui.submit(save);
  await expect(page.locator('ul.prefixes li')).toHaveText(normalized);
  await expect(page.getByRole('alert')).toHaveCount(0);
  // The field shows the stored list once the page is loaded again (with
  // JavaScript it keeps what was typed until then).
  await ui.reload();
  await expect(blocks).toHaveValue(normalized.join('\n'));

  // An IPv6 block gets the IPv6 message, naming the line; the saved list stays.
  await blocks.fill('203.0.113.0/24\n2001:db8::/32');
  await ui.submit(save);
  await expect(page.getByRole('alert')).toHaveText(
    'Nothing was saved. Line 2, "2001:db8::/32": IPv6 is not supported yet: enter an IPv4 block.',
  );
  await ui.reload();
  await expect(page.locator('ul.prefixes li')).toHaveText(normalized);
  await ui.screenshot('cidr-saved');
});

test('switching to BGP with an ASN and a neighbor, and back to manual routing', async ({ page, ui }) => {
  await ui.signIn(ADMIN.username, ADMIN.password);
  await expect(page).toHaveURL(/\/$/);
  await ui.open(`/nodes/${NODE}`);
  const mode = page.getByText(/^Mode:/);
  await expect(mode).toContainText('Mode: Manual CIDR');

  const switchToBgp = page.getByRole('button', { name: 'Switch to BGP routing' });
  // BGP needs the node's ASN and a router first; the page says so.
  await ui.submit(switchToBgp);
  await expect(page.getByRole('alert')).toHaveText(
    "Save the node's ASN and at least one BGP neighbor before switching it to BGP.",
  );
  await expect(mode).toContainText('Mode: Manual CIDR');

  const asn = page.getByLabel("The node's ASN (2-byte or 4-byte)");
  const neighbors = page.getByLabel('Neighbors: one router a line, its IPv4 address and ASN');
  const save = page.getByRole('button', { name: 'Save BGP settings' });
  // A router given by an IPv6 address: refused with the IPv6 message.
  await asn.fill('4200000001');
  await neighbors.fill('2001:db8::1 64512');
  await ui.submit(save);
  const ipv6Refused = page.getByRole('alert').filter({ hasText: 'IPv6 is not supported yet' });
  await expect(ipv6Refused).toContainText('2001:db8::1');
  await expect(neighbors).toHaveValue('2001:db8::1 64512');
  const facts = page.locator('dl.facts').filter({ hasText: 'Node ASN' });
  await expect(facts.locator('dt:text-is("Node ASN") + dd')).toHaveText('not set');

  // A 4-byte ASN for the node and a 2-byte one for its router.
  await asn.fill('4200000001');
  await neighbors.fill('192.0.2.1 64512');
  await ui.submit(save);
  await expect(facts.locator('dt:text-is("Node ASN") + dd')).toHaveText('4200000001');
  await expect(facts.locator('dt:text-is("Neighbors") + dd')).toHaveText('192.0.2.1 (AS64512)');
  await expect(ipv6Refused).toHaveCount(0);

  await ui.submit(switchToBgp);
  await expect(mode).toContainText('Mode: BGP');
  await ui.screenshot('node-bgp');

  await ui.open('/nodes');
  await expect(page.getByRole('row').filter({ hasText: NODE }).getByRole('cell').nth(2)).toHaveText('BGP');

  await ui.open(`/nodes/${NODE}`);
  await ui.submit(page.getByRole('button', { name: 'Switch to Manual CIDR routing' }));
  await expect(mode).toContainText('Mode: Manual CIDR');
  // The blocks saved before are still there, and so are the BGP settings.
  await expect(page.locator('ul.prefixes li')).toHaveCount(5);
  await expect(facts.locator('dt:text-is("Node ASN") + dd')).toHaveText('4200000001');
});

test('a registration key: the page shows the install command once and it can be copied', async ({ page, ui }) => {
  await ui.signIn(ADMIN.username, ADMIN.password);
  await expect(page).toHaveURL(/\/$/);
  await ui.open(`/nodes/${NODE}`);
  await expect(page.getByText('No registration key has been issued.')).toBeVisible();

  await ui.submit(page.getByRole('button', { name: 'Issue registration key' }));
  const command = page.getByRole('textbox', { name: 'Install command' });
  await expect(command).toBeVisible();
  await expect(command).not.toBeEditable();
  const text = await command.inputValue();
  // One command: fetch the script from this portal, pinned to its
  // self-signed certificate, and run it with the key.
  const origin = new URL(page.url()).origin;
  expect(text).toContain(`${origin}/`);
  expect(text).toMatch(/--pinnedpubkey 'sha256\/[A-Za-z0-9+/=]+'/);
  expect(text).toMatch(/export LASTMILE_[A-Z_]+='[^']+'/);
  expect(text).toContain('sudo');
  await expect(page.getByText(/^A key issued by olivia at .* is unused; it expires/)).toBeVisible();

  if (ui.js) {
    // The copy button comes with the wasm bundle and puts the command on
    // the clipboard.
    await page.getByRole('button', { name: 'Copy command' }).click();
    await expect(page.getByRole('button', { name: 'Copied' })).toBeVisible();
    const clipboard = await page.evaluate(() => navigator.clipboard.readText());
    expect(clipboard).toBe(text);
  } else {
    // A button that cannot work without JavaScript is not shown; the
    // read-only field is there to select and copy from.
    await expect(page.getByRole('button', { name: /Copy/ })).toHaveCount(0);
  }
  await ui.screenshot('registration-key');

  // Shown for the one page view after issuing, never again.
  await ui.reload();
  await expect(page.getByRole('textbox', { name: 'Install command' })).toHaveCount(0);
  await expect(page.getByText(/^A key issued by olivia at .* is unused/)).toBeVisible();

  await ui.signOut();
});

test('a viewer sees the node, its routing and its provisioning, and can change none of it', async ({ page, ui }) => {
  await ui.signIn(VIEWER.username, VIEWER.password);
  await expect(page).toHaveURL(/\/$/);

  await ui.open('/nodes');
  await expect(page.getByRole('row').filter({ hasText: NODE }).getByRole('cell')).toHaveText([
    NODE, '203.0.113.10', 'Manual CIDR', 'never connected', '—', 'pending',
  ]);
  await expect(page.getByRole('link', { name: 'Add a node' })).toHaveCount(0);

  await page.getByRole('link', { name: NODE }).click();
  await expect(page).toHaveURL(new RegExp(`/nodes/${NODE}$`));
  const main = page.getByRole('main');
  await expect(main.getByRole('heading', { name: `Node ${NODE}` })).toBeVisible();
  // All of it is there to read...
  const fact = (name: string) => main.locator(`dt:text-is("${name}") + dd`);
  await expect(fact('Public IPv4 address')).toHaveText('203.0.113.10');
  await expect(fact('Maximum egress')).toHaveText('2000 Mbps');
  await expect(fact('Cache drives').getByRole('listitem')).toHaveText(['/srv/cache1 — 500 GB', '/srv/cache2 — 750 GB']);
  await expect(main.getByText(/^Mode:/)).toContainText('Mode: Manual CIDR');
  await expect(main.locator('ul.prefixes li')).toHaveText(normalized);
  await expect(fact('Node ASN')).toHaveText('4200000001');
  await expect(fact('Neighbors')).toHaveText('192.0.2.1 (AS64512)');
  await expect(main.getByText(/^A key issued by olivia at .* is unused/)).toBeVisible();
  // ...and nothing to change it with: no buttons, no fields.
  await expect(main.getByRole('button')).toHaveCount(0);
  await expect(main.getByRole('textbox')).toHaveCount(0);
  await expect(main.getByRole('checkbox')).toHaveCount(0);
  await ui.screenshot('node-viewer');

  // The page for a new node offers a viewer no form either.
  await ui.open('/nodes/new');
  await expect(page.getByText('Only operators and administrators can add nodes.')).toBeVisible();
  await expect(page.getByRole('main').getByRole('textbox')).toHaveCount(0);
  await expect(page.getByRole('main').getByRole('button')).toHaveCount(0);

  // Posting the forms by hand is refused with the reason, and changes nothing.
  const refused = 'Your role (viewer) does not allow you to change nodes or routing.';
  await ui.postDirectly('/api/save_manual_routing', { name: NODE, prefixes: '192.0.2.0/24' }, `/nodes/${NODE}`);
  await expect(page).toHaveURL(new RegExp(`/nodes/${NODE}$`));
  await expect(page.getByRole('alert')).toHaveText(refused);
  await expect(page.locator('ul.prefixes li')).toHaveCount(5);

  await ui.postDirectly('/api/issue_registration_key', { name: NODE }, `/nodes/${NODE}`);
  await expect(page.getByRole('alert')).toHaveText(refused);
  await expect(page.getByRole('textbox', { name: 'Install command' })).toHaveCount(0);

  await ui.postDirectly('/api/delete_node', { name: NODE, confirm_name: NODE }, `/nodes/${NODE}`);
  await expect(page.getByRole('alert')).toHaveText(refused);
  await expect(page.getByRole('heading', { name: `Node ${NODE}` })).toBeVisible();
});
