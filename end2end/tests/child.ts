// Programs the tests start (portals, agents, the reference client): their
// output kept for failure reports, and killed with this process even when a
// run is interrupted before the tests' own clean-up.

import { spawn, type ChildProcess } from 'node:child_process';

const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export interface Child {
  process: ChildProcess;
  /** Everything it printed on stdout and stderr so far. */
  output(): string;
  /** Its exit code, once it has exited (null when a signal ended it). */
  exited: Promise<number | null>;
  /** Stops it the way systemd does (SIGTERM, SIGKILL after 10 s) and waits for it. */
  stop(): Promise<void>;
}

export function startChild(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Child {
  const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (s: string) => (output += s));
  child.stderr!.setEncoding('utf8').on('data', (s: string) => (output += s));
  const exited = new Promise<number | null>((done) =>
    child.once('exit', (code) => {
      running.delete(child);
      done(code);
    }),
  );
  return {
    process: child,
    output: () => output,
    exited,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const killed = setTimeout(() => child.kill('SIGKILL'), 10_000);
        await exited;
        clearTimeout(killed);
      }
    },
  };
}
