// What every browser test shares: a portal of its own per test file, the
// page under test watched for errors from the wasm bundle, and small helpers
// that act the way a person does (open a page, fill a form, sign in).

import { request, test as base, expect, type Locator, type Page, type TestInfo } from '@playwright/test';
import { rmSync } from 'node:fs';

import type { Origin, RunningAgent } from './agent';
import { SETUP_CODE, startPortal, type Portal } from './portal';

export { expect };
export { SETUP_CODE } from './portal';

/** The portal's one message for a failed sign-in (app/src/api/mod.rs). */
export const SIGN_IN_FAILED = 'The user name or password is incorrect.';

let portal: Portal | undefined;

/**
 * Gives the calling test file a fresh portal (empty database), started
 * before its first test and stopped after its last. The file's tests are
 * one story told in order (setup comes first), so they run serially.
 * `args` go on the portal's command line (such as short report intervals
 * for tests with a real agent).
 */
export function useFreshPortal(options: { args?: string[] } = {}): void {
  test.describe.configure({ mode: 'serial' });
  test.beforeAll(async () => {
    portal = await startPortal(options.args);
  });
  test.afterAll(async () => {
    await portal?.stop();
    portal = undefined;
  });
  test.afterEach(async ({}, testInfo) => {
    if (testInfo.status !== testInfo.expectedStatus && portal) {
      await testInfo.attach('portal output', { body: portal.output(), contentType: 'text/plain' });
    }
  });
}

/** What a test file with a node agent has running, once it does. */
export interface AgentLab {
  agent?: RunningAgent;
  origin?: Origin;
  /** A folder of the file's own, removed at the end. */
  work?: string;
}

/**
 * Stops the file's agent and origin and removes its folder after its
 * tests, and attaches the agent's log to a test that failed.
 */
export function cleanUpAgentLab(lab: () => AgentLab): void {
  base.afterAll(async () => {
    const { agent, origin, work } = lab();
    await agent?.stop();
    await origin?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });
  base.afterEach(async ({}, testInfo) => {
    const { agent } = lab();
    if (testInfo.status !== testInfo.expectedStatus && agent) {
      await testInfo.attach('agent output', { body: agent.output(), contentType: 'text/plain' });
    }
  });
}

/** The calling file's portal, https://127.0.0.1:PORT (for hooks, which have no `baseURL`). */
export function portalUrl(): string {
  if (!portal) throw new Error('no portal: call useFreshPortal() in the test file');
  return portal.url;
}

export interface Person {
  username: string;
  password: string;
}

/**
 * Sets up the organization with an administrator and a viewer (whose
 * temporary password is already replaced) by posting the portal's own
 * forms, without a browser: for test files whose story starts after the
 * first-run setup, which accounts.spec.ts tests through the pages.
 */
export async function seedOrganization(org: string, admin: Person, viewer: Person): Promise<void> {
  const url = portal!.url;
  const post = async (who: Awaited<ReturnType<typeof request.newContext>>, path: string, form: Record<string, string>) => {
    const response = await who.post(path, { form });
    expect(response.ok(), `${path}: ${response.status()} ${await response.text()}`).toBe(true);
  };
  const asAdmin = await request.newContext({ baseURL: url, ignoreHTTPSErrors: true });
  await post(asAdmin, '/api/setup', {
    setup_code: SETUP_CODE,
    org_name: org,
    username: admin.username,
    password: admin.password,
    password_confirm: admin.password,
  });
  const temporary = `${viewer.password}-temporary`;
  await post(asAdmin, '/api/add_person', { username: viewer.username, role: 'viewer', temporary_password: temporary });
  await asAdmin.dispose();
  const asViewer = await request.newContext({ baseURL: url, ignoreHTTPSErrors: true });
  await post(asViewer, '/api/login', { username: viewer.username, password: temporary });
  await post(asViewer, '/api/change_password', {
    current_password: temporary,
    new_password: viewer.password,
    new_password_confirm: viewer.password,
  });
  await asViewer.dispose();
}

/** Acts on the portal the way a person in a browser does. */
export class Ui {
  // Document loads this helper caused (opening a page, posting a form
  // without JavaScript) and document loads that happened. With JavaScript
  // they must match at the end of each test: hydrated forms submit in place.
  expectedLoads = 0;
  loads = 0;

  constructor(
    readonly page: Page,
    /** Whether this project runs the page's JavaScript (the wasm bundle). */
    readonly js: boolean,
    private readonly testInfo: TestInfo,
  ) {
    page.on('load', () => this.loads++);
  }

  /** Opens a page by its path and, with JavaScript, lets the wasm bundle hydrate it. */
  async open(path: string): Promise<void> {
    this.expectedLoads++;
    await this.page.goto(path);
    await this.settle();
  }

  async reload(): Promise<void> {
    this.expectedLoads++;
    await this.page.reload();
    await this.settle();
  }

  /**
   * With JavaScript, waits until the bundle has loaded and hydrated the
   * page: a click before that would post the form the old way and the
   * test would not notice that hydration is broken.
   */
  private async settle(): Promise<void> {
    if (this.js) await this.page.waitForLoadState('networkidle');
  }

  /**
   * Clicks a form's submit button. Without JavaScript this posts the form and
   * waits for the page the portal redirects to; with JavaScript the form
   * submits in place and the caller's next assertion waits for the result.
   */
  async submit(button: Locator): Promise<void> {
    if (this.js) {
      await button.click();
    } else {
      this.expectedLoads++;
      await Promise.all([this.page.waitForEvent('load'), button.click()]);
    }
  }

  /** The password field labelled `label`, whichever state its "Show" toggle is in. */
  password(label: string): Locator {
    return this.page.getByLabel(new RegExp(`^${label}\\s*(Show|Hide)?$`));
  }

  async signIn(username: string, password: string): Promise<void> {
    await this.open('/login');
    await this.page.getByLabel('User name').fill(username);
    await this.password('Password').fill(password);
    await this.submit(this.page.getByRole('button', { name: 'Sign in' }));
  }

  async signOut(): Promise<void> {
    await this.submit(this.page.getByRole('button', { name: 'Sign out' }));
    await expect(this.page).toHaveURL(/\/login$/);
  }

  /**
   * Posts a form straight to a server function, bypassing the page, as a
   * hand-made HTML form would (the browser's cookies, asking for a page
   * back), then opens the page the portal sends the browser back to, where
   * its answer is shown.
   */
  async postDirectly(endpoint: string, form: Record<string, string>, from: string): Promise<void> {
    const base = new URL(this.page.url()).origin;
    const response = await this.page.request.post(endpoint, {
      form,
      headers: { Accept: 'text/html', Referer: base + from },
      // The answer must be read by the browser page, not by this request:
      // it is shown once.
      maxRedirects: 0,
    });
    expect(response.status(), 'the portal sends a form post back to a page').toBeGreaterThanOrEqual(300);
    expect(response.status()).toBeLessThan(400);
    await this.open(new URL(response.headers()['location'], base).pathname);
  }

  /** Saves a full-page screenshot as test-results/<test>/<name>.png. */
  async screenshot(name: string): Promise<void> {
    await this.page.screenshot({ path: this.testInfo.outputPath(`${name}.png`), fullPage: true });
  }
}

export const test = base.extend<{ ui: Ui }>({
  // Set while the calling file's portal runs (see useFreshPortal); hooks
  // that run before it starts get none.
  baseURL: async ({}, use) => {
    await use(portal?.url);
  },

  // Any uncaught error or console error from the page fails the test: a
  // wasm bundle that panics or fails to load shows up here even when the
  // server-rendered page looks right.
  page: async ({ page }, use) => {
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(`uncaught: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() !== 'error') return;
      const failedLoad = /^Failed to load resource: the server responded with a status of (\d+)/.exec(message.text());
      if (failedLoad) {
        // The browser itself logs every 4xx and 5xx answer. The portal
        // answers a refused action with a 4xx (and the page shows why), a
        // missing page with 404, and it has no favicon: all expected. The
        // bundle failing to load, or a server error, is not.
        const path = new URL(message.location().url || '/', 'https://portal').pathname;
        if (Number(failedLoad[1]) < 500 && !path.startsWith('/pkg/')) return;
      }
      problems.push(`console: ${message.text()} (${message.location().url})`);
    });
    await use(page);
    expect(problems, 'errors in the browser').toEqual([]);
  },

  ui: async ({ page, javaScriptEnabled }, use, testInfo) => {
    const ui = new Ui(page, javaScriptEnabled !== false, testInfo);
    await use(ui);
    if (ui.js) {
      expect(ui.loads, 'with JavaScript, no form reloads the page').toBe(ui.expectedLoads);
    }
  },
});
