// Shared by the history tests: a log collector, a temporary directory removed after the test, a ban.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Ban } from '../../src/ledger';
import type { Logger } from '../../src/log';

export const collect = (): Logger & { lines: string[] } => {
  const lines: string[] = [];
  const put = (l: string) => (m: string) => void lines.push(`${l}: ${m}`);
  return { lines, info: put('info'), warn: put('warn'), error: put('error'), debug: () => {} };
};

export function tmpdir(t: { after(fn: () => unknown): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tallow-history-${process.pid}-`));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function ban(address: string, since: number, over: Partial<Ban> = {}): Ban {
  return { address, family: address.includes(':') ? 6 : 4, scope: '', rule: null, since, expiry: since + 3_600_000, origin: 'rule', reason: 'threshold', pattern: 'sshd.json#2', score: 1, count: 5, ...over };
}
