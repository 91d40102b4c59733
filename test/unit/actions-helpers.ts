// Shared by the action tests: a ledger feeding a dispatcher, quiet loggers, temporary
// directories, programs written by the test.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Dispatcher, type Listener } from '../../src/events';
import { Ledger, type BanRequest } from '../../src/ledger';
import type { Logger } from '../../src/log';

export type Collector = Logger & { errors: string[]; lines: string[] };

export function collector(): Collector {
  const errors: string[] = [];
  const lines: string[] = [];
  const put = (level: string) => (m: string, f?: Record<string, string>) => void lines.push(`${level} ${m} ${f ? JSON.stringify(f) : ''}`);
  return {
    errors,
    lines,
    info: put('info'),
    warn: put('warn'),
    debug() {},
    error: (m, f) => {
      errors.push(`${m} ${f ? JSON.stringify(f) : ''}`);
      put('error')(m, f);
    },
  };
}

export function tempDir(t: { after(fn: () => void): void }, name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tallow-${name}-`));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** An executable file of the test's own, for the code under test to run. */
export function program(dir: string, name: string, text: string): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, text, { mode: 0o755 });
  return p;
}

export function wire(listeners: Listener[], log: Logger = collector()): { ledger: Ledger; events: Dispatcher } {
  let events!: Dispatcher;
  const ledger = new Ledger({ emit: (e) => events.emit(e) });
  events = new Dispatcher(listeners, log, { retryBaseMs: 20, retryMaxMs: 100 });
  return { ledger, events };
}

export function ban(address: string, over: Partial<BanRequest> = {}): BanRequest {
  return { address, family: address.includes(':') ? 6 : 4, seconds: 3600, origin: 'rule', reason: 'threshold', pattern: 'sshd.json#2', score: 1, count: 5, ...over };
}

/** 1..n as documentation addresses: 198.51.100.x / 203.0.113.x first, then 2001:db8::x. */
export function addresses(n: number): string[] {
  return Array.from({ length: n }, (_, i) => (i < 250 ? `203.0.113.${i + 1}` : `2001:db8::${(i + 1).toString(16)}`));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function waitFor(what: string, probe: () => boolean, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}
