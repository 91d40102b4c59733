// `tallow report` beside a real daemon (sandbox: its own journald, kernel sets): while the daemon
// runs and writes its SQLite history, the command reads the same file read-only and counts what
// the daemon did (bans from journal lines, a ban and an unban by hand); after the daemon stops,
// the same figures from the file alone.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createSandbox, waitFor, type Sandbox } from '../env/sandbox';
import { CLI, DaemonProc, SSHD_FILTER, writeConfig } from './e2e-daemon';
import type { ReportData } from '../../src/report/types';

const PATTERNS = [{ filter: SSHD_FILTER, items: [{ ban: 0, score: 1, pattern: '^Failed password for (?:invalid user )?\\S+ from <IP> port <PORT> ssh2$' }] }];
const V6 = Array.from({ length: 10 }, (_, i) => `2001:db8:e::${i + 1}`);
const V4 = ['203.0.113.50', '203.0.113.51'];

let sb: Sandbox;
let daemon: DaemonProc | undefined;

describe('tallow report beside a running daemon', { timeout: 180_000 }, () => {
  before(async () => {
    sb = await createSandbox({ network: true, journald: true });
  });
  after(async () => {
    if (daemon && !daemon.exit) daemon.kill('SIGKILL');
    await sb?.destroy();
  });

  it('reads the history the daemon is writing, and the same file after it stopped', async () => {
    const conf = writeConfig(sb, 'rep', ['expires=3600', 'threshold=1.0', 'ipv6=1', 'whitelist=127.0.0.1']);
    fs.writeFileSync(path.join(sb.dir, 'rep', 'patterns', 'sshd.json'), JSON.stringify(PATTERNS));
    const report = async (...args: string[]) => {
      const r = await sb.run([process.execPath, CLI, 'report', ...args, '--config', conf], { net: 'server', timeoutMs: 60_000 });
      assert.equal(r.code, 0, r.stderr);
      return r.stdout;
    };
    const json = async () => JSON.parse(await report('--format', 'json')) as ReportData;

    daemon = new DaemonProc(sb, ['--config', conf]);
    await daemon.ready();
    const f = path.join(sb.dir, 'attack.txt');
    fs.writeFileSync(f, [...V6, ...V4].map((a) => `Failed password for invalid user u from ${a} port 4000 ssh2\n`).join(''));
    assert.equal((await sb.run(['logger', '-t', 'sshd', '-f', f])).code, 0);
    await sb.check([process.execPath, CLI, 'ban', '198.51.100.9', '--config', conf], { net: 'server' });
    await sb.check([process.execPath, CLI, 'unban', '198.51.100.9', '--config', conf], { net: 'server' });

    let running: ReportData | undefined;
    await waitFor(`13 bans and 1 unban in the report:\n${daemon.output}`, async () => {
      running = await json();
      return running.totals.current.bans === 13 && running.totals.current.unbans === 1;
    }, 30_000, 250);
    assert.ok(daemon.exit === null, 'the daemon was running while the report read its history');
    const figures = (d: ReportData) => ({ totals: d.totals.current, rules: d.rules, networks: d.networks, repeat: d.repeatOffenders.total });
    assert.deepEqual(figures(running!), {
      totals: { bans: 13, unbans: 1, unbansByReason: { manual: 1 }, addressesBanned: 13, addressesSeen: 13, matches: 12, matchesPastCap: 0 },
      rules: [
        { rule: 'sshd', bans: 12, previousBans: 0, unbans: 0 },
        { rule: '(manual)', bans: 1, previousBans: 0, unbans: 1 },
      ],
      networks: [
        { network: '2001:db8:e::/64', bans: 10, addresses: 10, matches: 10 },
        { network: '203.0.113.0/24', bans: 2, addresses: 2, matches: 2 },
        { network: '198.51.100.0/24', bans: 1, addresses: 1, matches: 0 },
      ],
      repeat: 0,
    });
    const text = await report();
    assert.match(text, /\nBans per rule\nRULE +BANS +PREVIOUS +UNBANS\nsshd +12 +0 +0\n\(manual\) +1 +0 +1\n/);
    assert.match(await report('--format', 'html'), /^<!DOCTYPE html>[\s\S]*<\/html>\n$/);

    const d = daemon;
    await d.stop();
    assert.equal((d.exit as { code: number | null } | null)?.code, 0, d.output);
    assert.deepEqual(figures(await json()), figures(running!));
  });
});
