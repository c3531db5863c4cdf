// Issue 2, the foundation: first-run setup, signing in and out, adding a
// viewer who must replace the temporary password and then cannot change
// anything, and the audit log. One story on one fresh portal, in order.

import { expect, SETUP_CODE, SIGN_IN_FAILED, test, useFreshPortal } from './fixtures';

useFreshPortal();

const ORG = 'Example Fibre';
const ADMIN = { username: 'alice', password: 'alice-admin-pass-1' };
const VIEWER = { username: 'victor', temporary: 'victor-temporary-1', own: 'victor-own-pass-2' };

test('a new portal sends everyone to setup, which needs the setup code, creates the organization and is then gone', async ({ page, ui }) => {
  await ui.open('/');
  await expect(page).toHaveURL(/\/setup$/);
  await expect(page.getByRole('heading', { name: 'Set up Lastmile' })).toBeVisible();

  const fill = async (code: string) => {
    await page.getByLabel('Setup code').fill(code);
    await page.getByLabel('Organization (your ISP)').fill(ORG);
    await page.getByLabel("Administrator's user name").fill(ADMIN.username);
    await ui.password('Password').fill(ADMIN.password);
    await ui.password('Password again').fill(ADMIN.password);
  };
  const create = page.getByRole('button', { name: 'Create organization' });

  // Whoever reaches a new portal first cannot claim it without the code.
  await fill('not-the-code');
  await ui.submit(create);
  await expect(page.getByRole('alert')).toHaveText(
    "The setup code is wrong. It is printed in the portal's log when it starts.",
  );
  await expect(page).toHaveURL(/\/setup$/);
  // What was typed stays (without JavaScript, secrets aside: the code and
  // passwords are never kept).
  await expect(page.getByLabel('Organization (your ISP)')).toHaveValue(ORG);
  await expect(page.getByLabel("Administrator's user name")).toHaveValue(ADMIN.username);

  await fill(SETUP_CODE);
  await ui.submit(create);
  await expect(page).toHaveURL(/\/$/);
  await expect(page.getByRole('heading', { name: ORG })).toBeVisible();
  await expect(page.getByText(`You are signed in as ${ADMIN.username}, admin`)).toBeVisible();
  await ui.screenshot('overview-after-setup');

  await ui.open('/setup');
  await expect(page.getByRole('heading', { name: 'Not found' })).toBeVisible();
  await expect(page.getByLabel('Setup code')).toHaveCount(0);
});

test('a wrong password or an unknown name gets one message, the right password signs in, and signing out ends the session', async ({ page, ui }) => {
  await ui.open('/login');
  const password = ui.password('Password');
  if (ui.js) {
    // Proof that the wasm bundle hydrated the page: the "Show" button is
    // rendered only by the bundle, and only the bundle can make it work.
    await page.getByRole('button', { name: 'Show' }).click();
    await expect(password).toHaveAttribute('type', 'text');
    await page.getByRole('button', { name: 'Hide' }).click();
    await expect(password).toHaveAttribute('type', 'password');
  } else {
    // A button that cannot work without JavaScript is not shown.
    await expect(page.getByRole('button', { name: 'Show' })).toHaveCount(0);
    await expect(password).toHaveAttribute('type', 'password');
  }

  await ui.signIn(ADMIN.username, 'not-alices-password');
  await expect(page.getByRole('alert')).toHaveText(SIGN_IN_FAILED);
  await expect(page).toHaveURL(/\/login$/);
  await expect(page.getByLabel('User name')).toHaveValue(ADMIN.username);
  await ui.screenshot('sign-in-failed');

  // The same words for a name that does not exist: the page must not tell
  // which of the two was wrong.
  await ui.signIn('nobody-by-this-name', 'not-a-password-either');
  await expect(page.getByRole('alert')).toHaveText(SIGN_IN_FAILED);

  await ui.signIn(ADMIN.username, ADMIN.password);
  await expect(page).toHaveURL(/\/$/);
  await expect(page.getByText(`You are signed in as ${ADMIN.username}, admin`)).toBeVisible();
  await expect(page.getByRole('alert')).toHaveCount(0);

  await ui.signOut();
  await ui.open('/people');
  await expect(page).toHaveURL(/\/login$/);
  await expect(page.getByRole('heading', { name: 'Sign in to Lastmile' })).toBeVisible();
});

test('an administrator adds a viewer, who must replace the temporary password at first sign-in', async ({ page, ui }) => {
  await ui.signIn(ADMIN.username, ADMIN.password);
  await expect(page).toHaveURL(/\/$/);
  await ui.open('/people');
  const form = page.locator('#add-person');
  await form.getByLabel('User name').fill(VIEWER.username);
  await form.getByLabel('Role').selectOption('viewer');
  await ui.password('Temporary password').fill(VIEWER.temporary);
  await ui.submit(form.getByRole('button', { name: 'Add person' }));

  const row = page.getByRole('row').filter({ hasText: VIEWER.username });
  await expect(row.getByRole('cell').nth(1)).toHaveText('viewer');
  await expect(row.getByRole('cell').nth(2)).toHaveText('temporary');
  await ui.screenshot('people-admin');
  await ui.signOut();

  await ui.signIn(VIEWER.username, VIEWER.temporary);
  await expect(page).toHaveURL(/\/account\/password$/);
  await expect(page.getByText('Your password is temporary. Choose your own before you continue.')).toBeVisible();
  // Nothing else opens until the password is changed.
  await ui.open('/nodes');
  await expect(page).toHaveURL(/\/account\/password$/);

  await ui.password('Current password').fill(VIEWER.temporary);
  await ui.password('New password').fill(VIEWER.own);
  await ui.password('New password again').fill(VIEWER.own);
  await ui.submit(page.getByRole('button', { name: 'Change password' }));
  await expect(page).toHaveURL(/\/$/);
  await expect(page.getByText(`You are signed in as ${VIEWER.username}, viewer (read only)`)).toBeVisible();
  await ui.signOut();

  // The temporary password no longer works.
  await ui.signIn(VIEWER.username, VIEWER.temporary);
  await expect(page.getByRole('alert')).toHaveText(SIGN_IN_FAILED);
});

test('a viewer sees the people but can change nothing, and a direct attempt is refused with a message', async ({ page, ui }) => {
  await ui.signIn(VIEWER.username, VIEWER.own);
  await expect(page).toHaveURL(/\/$/);
  await expect(page.getByRole('link', { name: 'Audit log' })).toHaveCount(0);

  await ui.open('/people');
  await expect(page.getByRole('row').filter({ hasText: ADMIN.username })).toBeVisible();
  await expect(page.getByRole('row').filter({ hasText: VIEWER.username })).toBeVisible();
  await expect(page.getByText('Only administrators can add or change people.')).toBeVisible();
  // No forms for changes: no buttons, no fields.
  await expect(page.getByRole('main').getByRole('button')).toHaveCount(0);
  await expect(page.getByRole('main').getByRole('textbox')).toHaveCount(0);
  await ui.screenshot('people-viewer');

  // Posting the add-person form by hand is refused, with the reason shown.
  await ui.postDirectly(
    '/api/add_person',
    { username: 'mallory', role: 'admin', temporary_password: 'mallory-pass-123' },
    '/people',
  );
  await expect(page).toHaveURL(/\/people$/);
  await expect(page.getByRole('alert')).toHaveText('Your role (viewer) does not allow you to manage people.');
  await expect(page.getByRole('row').filter({ hasText: 'mallory' })).toHaveCount(0);

  await ui.open('/audit');
  await expect(page.getByRole('alert')).toHaveText('Your role (viewer) does not allow you to read the audit log.');
  await expect(page.getByRole('table')).toHaveCount(0);
});

test('the administrator reads the audit log: who did what, when and from where', async ({ page, ui }) => {
  await ui.signIn(ADMIN.username, ADMIN.password);
  await expect(page).toHaveURL(/\/$/);
  await page.getByRole('link', { name: 'Audit log' }).click();
  await expect(page).toHaveURL(/\/audit$/);
  await expect(page.getByRole('heading', { name: 'Audit log' })).toBeVisible();

  const entry = (who: string, what: string) =>
    page.getByRole('row').filter({ has: page.getByRole('cell', { name: who, exact: true }) })
      .filter({ has: page.getByRole('cell', { name: what, exact: true }) });
  await expect(entry(ADMIN.username, 'org.create')).toHaveCount(1);
  await expect(entry(ADMIN.username, 'auth.login_failed')).toHaveCount(1);
  await expect(entry(ADMIN.username, 'person.add')).toHaveCount(1);
  await expect(entry(ADMIN.username, 'auth.logout')).not.toHaveCount(0);
  await expect(entry(VIEWER.username, 'account.password')).toHaveCount(1);
  await expect(entry(VIEWER.username, 'auth.login')).not.toHaveCount(0);
  // From where: the browser's address, and when: a UTC time.
  await expect(entry(ADMIN.username, 'org.create').getByRole('cell').last()).toHaveText('127.0.0.1');
  await expect(entry(ADMIN.username, 'org.create').getByRole('cell').first()).toHaveText(
    /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/,
  );
  // The viewer's refused attempt added no one.
  await expect(page.getByRole('cell', { name: /mallory/ })).toHaveCount(0);
  await ui.screenshot('audit-log');

  await ui.signOut();
});
