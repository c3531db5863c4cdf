// Browser tests of the portal in Debian's Chromium, once with JavaScript
// (the wasm bundle hydrates the pages) and once without (plain forms that
// post and redirect). Each test file starts its own portal: see
// tests/fixtures.ts. Run by scripts/test, which builds the portal and sets
// LASTMILE_PORTAL_BIN.

import { defineConfig } from '@playwright/test';

export default defineConfig({
  testDir: './tests',
  outputDir: './test-results',
  // The portal is a debug build, and Argon2 in a debug build takes a
  // moment per sign-in on a busy two-core machine.
  timeout: 90_000,
  expect: { timeout: 15_000 },
  // One portal per test file and project; two at a time fit two cores.
  workers: process.env.E2E_WORKERS ? Number(process.env.E2E_WORKERS) : 2,
  forbidOnly: !!process.env.CI,
  retries: 0,
  reporter: [['list']],
  use: {
    // Each portal makes its own self-signed certificate.
    ignoreHTTPSErrors: true,
    screenshot: 'only-on-failure',
    trace: 'retain-on-failure',
    launchOptions: {
      // Playwright's own browser download does not work here.
      executablePath: process.env.CHROMIUM_BIN ?? '/usr/bin/chromium',
      // Without the background-networking flags Chromium keeps trying to
      // reach Google's servers, which this machine cannot.
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
  },
  projects: [
    {
      name: 'javascript',
      use: {
        javaScriptEnabled: true,
        // The install command's "Copy" button writes to the clipboard, and
        // the test reads it back.
        permissions: ['clipboard-read', 'clipboard-write'],
      },
    },
    {
      name: 'no-javascript',
      use: { javaScriptEnabled: false },
    },
  ],
});
