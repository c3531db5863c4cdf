// What the browser tests with a real node agent need beside the portal: the
// agent binary the portal serves (scripts/build-site builds it beside the
// portal), free loopback ports, a local origin standing in for the CDN
// (files with Range, ETag and Last-Modified, as a CDN serves them), and
// the agent itself, run and stopped the way an operator's service manager
// does.

import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { dirname } from 'node:path';

import { startChild } from './child';
import { agentBinaryPath } from './portal';

/** The host name the tests' origin goes by; nodes add it to their allow-list. */
export const ORIGIN_HOST = 'origin.test';

/** The agent binary the portal serves (see `agentBinaryPath`); fails with what to do when there is none. */
export function agentBinary(): string {
  const bin = agentBinaryPath();
  if (!bin) {
    throw new Error(
      'No agent binary beside the portal. scripts/build-site builds it there; or point LASTMILE_AGENT_BIN at it.',
    );
  }
  return bin;
}

/** A loopback port nobody listens on right now. */
export async function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createNetServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => done(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

/** A local origin (the CDN) serving files from memory. */
export interface Origin {
  port: number;
  /** http://origin.test:PORT/NAME: the URL a client asks for. */
  url(name: string): string;
  /** Bytes the origin has sent, bodies only: what the CDN served. */
  bytesSent(): number;
  stop(): Promise<void>;
}

/**
 * Starts an origin with the given files (name → size in bytes). File
 * contents are a deterministic byte pattern, so a misplaced range shows.
 * Range requests are answered 206 with Content-Range, If-Range is honoured,
 * and every file has a strong ETag and a Last-Modified date.
 */
export async function startOrigin(files: Record<string, number>): Promise<Origin> {
  const bodies = new Map<string, { data: Buffer; etag: string }>();
  for (const [name, size] of Object.entries(files)) {
    const data = Buffer.alloc(size);
    let x = 0x9e3779b9 ^ size;
    for (let i = 0; i < size; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      data[i] = x & 0xff;
    }
    const etag = `"${createHash('sha256').update(data).digest('hex').slice(0, 16)}"`;
    bodies.set(`/${name}`, { data, etag });
  }
  const lastModified = new Date(Date.UTC(2026, 0, 1)).toUTCString();
  let sent = 0;
  const server: Server = createServer((req, res) => {
    const file = bodies.get((req.url ?? '/').split('?')[0]);
    if (!file || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(file ? 405 : 404).end();
      return;
    }
    const size = file.data.length;
    const headers: Record<string, string | number> = {
      'Accept-Ranges': 'bytes',
      ETag: file.etag,
      'Last-Modified': lastModified,
      'Content-Type': 'application/octet-stream',
    };
    const ifRange = req.headers['if-range'];
    const range = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? '');
    let start = 0;
    let end = size - 1;
    let status = 200;
    if (range && (!ifRange || ifRange === file.etag || ifRange === lastModified)) {
      if (range[1] === '') {
        start = Math.max(0, size - Number(range[2]));
      } else {
        start = Number(range[1]);
        if (range[2] !== '') end = Math.min(end, Number(range[2]));
      }
      if (start > end || start >= size) {
        res.writeHead(416, { 'Content-Range': `bytes */${size}` }).end();
        return;
      }
      status = 206;
      headers['Content-Range'] = `bytes ${start}-${end}/${size}`;
    }
    headers['Content-Length'] = end - start + 1;
    res.writeHead(status, headers);
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    sent += end - start + 1;
    res.end(file.data.subarray(start, end + 1));
  });
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    port,
    url: (name) => `http://${ORIGIN_HOST}:${port}/${name}`,
    bytesSent: () => sent,
    stop: () =>
      new Promise<void>((done) => {
        server.closeAllConnections();
        server.close(() => done());
      }),
  };
}

export interface RunningAgent {
  /** Where subscribers download from: http://127.0.0.1:PORT. */
  dataUrl: string;
  /** Everything the agent logged, for failure reports. */
  output(): string;
  /** Stops it the way systemd does (SIGTERM) and waits for it to exit. */
  stop(): Promise<void>;
}

/**
 * Runs `lastmile-agent run` from `binary` with its state in `stateDir`, on
 * loopback ports of its own, fetching `origin.test` from the test origin.
 */
export async function runAgent(binary: string, stateDir: string, origin: Origin): Promise<RunningAgent> {
  const [data, admin, bgp] = [await freePort(), await freePort(), await freePort()];
  const agent = startChild(
    binary,
    [
      'run',
      '--state-dir', stateDir,
      '--listen', `127.0.0.1:${data}`,
      '--admin-listen', `127.0.0.1:${admin}`,
      '--bgp-listen', `127.0.0.1:${bgp}`,
      '--origin-port', String(origin.port),
      '--origin-resolve', `${ORIGIN_HOST}=127.0.0.1:${origin.port}`,
    ],
    { ...process.env, LASTMILE_LOG: 'info' },
  );
  return { dataUrl: `http://127.0.0.1:${data}`, output: agent.output, stop: agent.stop };
}

/** The `--pin` of a self-signed portal, from its install command. */
export function pinOf(installCommand: string): string {
  const pin = /--pin '([^']+)'/.exec(installCommand)?.[1];
  if (!pin) throw new Error(`no --pin in the install command: ${installCommand}`);
  return pin;
}

/**
 * Runs the reference client: steering for `client`, then the download in
 * parallel ranges from the node (or the origin). Returns what it printed.
 * Asynchronous: the origin it downloads from runs in this very process.
 */
export async function fetchThrough(
  binary: string,
  portal: string,
  pin: string,
  origin: Origin,
  file: string,
  client: string,
  output: string,
): Promise<string> {
  mkdirSync(dirname(output), { recursive: true });
  const fetch = startChild(binary, [
    'fetch', origin.url(file),
    '--portal', portal,
    '--pin', pin,
    '--client', client,
    '--origin-resolve', `${ORIGIN_HOST}=127.0.0.1:${origin.port}`,
    '--output', output,
  ]);
  const killed = setTimeout(() => fetch.process.kill('SIGKILL'), 60_000);
  const status = await fetch.exited;
  clearTimeout(killed);
  const text = fetch.output();
  if (status !== 0) throw new Error(`lastmile-agent fetch failed (${status}): ${text}`);
  return text;
}
