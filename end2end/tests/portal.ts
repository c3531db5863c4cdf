// Starts and stops a real portal for the browser tests: the built
// `lastmile-portal` binary on a loopback port, speaking HTTPS with its own
// self-signed certificate, with a fresh data folder (so a fresh SQLite
// database) and a setup code the tests know.

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { get } from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

import { startChild } from './child';

export const SETUP_CODE = 'e2e-setup-7f3k9q';

export interface Portal {
  /** https://127.0.0.1:PORT, without a trailing slash. */
  url: string;
  /** Everything the portal printed, for failure reports. */
  output(): string;
  stop(): Promise<void>;
}

function portalBinary(): string {
  const bin =
    process.env.LASTMILE_PORTAL_BIN ?? resolve(__dirname, '../../target/debug/lastmile-portal');
  if (!existsSync(bin)) {
    throw new Error(
      `No portal binary at ${bin}. Build it with scripts/build-site and point LASTMILE_PORTAL_BIN at it.`,
    );
  }
  return bin;
}

/**
 * The node agent the portal serves to install scripts: LASTMILE_AGENT_BIN,
 * or `lastmile-agent` beside the portal binary (scripts/build-site builds
 * both). `undefined` when there is none: only tests with an agent need it.
 */
export function agentBinaryPath(): string | undefined {
  const bin = process.env.LASTMILE_AGENT_BIN ?? join(dirname(portalBinary()), 'lastmile-agent');
  return existsSync(bin) ? bin : undefined;
}

/** `extraArgs` are appended to the portal's command line. */
export async function startPortal(extraArgs: string[] = []): Promise<Portal> {
  const dataDir = mkdtempSync(join(tmpdir(), 'lastmile-e2e-'));
  const agent = agentBinaryPath();
  // Port 0: the kernel picks a free port, and the portal prints which one.
  // Picking a port here and passing it on would race with other test
  // workers and other people's test runs on the same machine.
  const portal = startChild(
    portalBinary(),
    [
      '--data-dir', dataDir,
      '--self-signed',
      '--listen', '127.0.0.1:0',
      '--setup-code', SETUP_CODE,
      ...(agent ? ['--agent-binary', agent] : []),
      ...extraArgs,
    ],
    { ...process.env, LASTMILE_LOG: process.env.LASTMILE_LOG ?? 'warn' },
  );
  const stop = async () => {
    await portal.stop();
    rmSync(dataDir, { recursive: true, force: true });
  };

  try {
    const url = await waitFor(60_000, 'the portal to print its address', () => {
      const status = portal.process.exitCode;
      if (status !== null) throw new Error(`the portal exited with ${status}`);
      return /listening on (https:\/\/[0-9.]+:\d+)\//.exec(portal.output())?.[1];
    });
    await waitFor(30_000, 'the portal to answer /healthz', async () =>
      (await healthz(url)) ? true : undefined,
    );
    return { url, output: portal.output, stop };
  } catch (e) {
    await stop();
    throw new Error(`${(e as Error).message}\n--- portal output ---\n${portal.output()}`);
  }
}

async function waitFor<T>(ms: number, what: string, probe: () => T | undefined | Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function healthz(base: string): Promise<boolean> {
  return new Promise((done) => {
    // The certificate is the portal's own self-signed one.
    const req = get(`${base}/healthz`, { rejectUnauthorized: false, timeout: 5_000 }, (res) => {
      res.resume();
      done(res.statusCode === 200);
    });
    req.on('error', () => done(false));
    req.on('timeout', () => req.destroy());
  });
}
