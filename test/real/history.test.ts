// The history in a real daemon (issue 15), in a sandbox with its own journald and kernel sets:
// - kill -9 during a 5,000-ban flood: after a restart every ban in the kernel is in the history
//   file, and no ban is in it twice (the lost in-memory queue is made good from the state file and
//   the kernel; what was stored already is not stored again);
// - a broken history file at start is moved aside with a log line, and bans go on;
// - repeat offenders with short bantimes: banned, expired, attacking again -> twice as long, and
//   the step survives a restart (it is counted from the history).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Database from 'better-sqlite3';
import { createSandbox, sleep, waitFor, type Sandbox } from '../env/sandbox';
import { CLI, DaemonProc, ipsetTimeout, SSHD_FILTER, writeConfig } from './e2e-daemon';

const PATTERNS = [{ filter: SSHD_FILTER, items: [{ ban: 0, score: 1, pattern: '^Failed password for (?:invalid user )?\\S+ from <IP> port <PORT> ssh2$' }] }];
const BANS = 5000;
const addr = (i: number): string => `2001:db8:d::${(i + 1).toString(16)}`;

let sb: Sandbox;
const daemons: DaemonProc[] = [];

function start(conf: string): DaemonProc {
  const d = new DaemonProc(sb, ['--config', conf]);
  daemons.push(d);
  return d;
}

async function kernelSet(set: string): Promise<Set<string>> {
  const r = await sb.run(['ipset', 'list', set, '-o', 'save'], { net: 'server' });
  const out = new Set<string>();
  for (const l of r.stdout.split('\n')) {
    const m = new RegExp(`^add ${set} (\\S+)`).exec(l.trim());
    if (m) out.add(m[1]);
  }
  return out;
}

function historyBans(file: string): { address: string; n: number }[] {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    return db.prepare('SELECT address, count(*) AS n FROM bans GROUP BY address').all() as { address: string; n: number }[];
  } finally {
    db.close();
  }
}

function countBans(file: string): number {
  try {
    return historyBans(file).length;
  } catch {
    return 0;
  }
}

async function attack(name: string, lines: string[]): Promise<void> {
  const f = path.join(sb.dir, `${name}-${Date.now()}.txt`);
  fs.writeFileSync(f, lines.join('\n') + '\n');
  const r = await sb.run(['logger', '-t', 'sshd', '-f', f]);
  assert.equal(r.code, 0, r.stderr);
}

describe('history in a real daemon', { timeout: 400_000 }, () => {
  before(async () => {
    sb = await createSandbox({ network: true, journald: true });
  });
  after(async () => {
    for (const d of daemons) if (!d.exit) d.kill('SIGKILL');
    await sb?.destroy();
  });

  it('kill -9 during a 5,000-ban flood: every kernel ban is in the history after the restart, none twice', async (t) => {
    const conf = writeConfig(sb, 'flood', ['expires=3600', 'threshold=1.0', 'ipv6=1', 'whitelist=127.0.0.1']);
    fs.writeFileSync(path.join(sb.dir, 'flood', 'patterns', 'sshd.json'), JSON.stringify(PATTERNS));
    const file = path.join(sb.dir, 'flood', 'state', 'history.sqlite');
    const lines = Array.from({ length: BANS }, (_, i) => `Failed password for invalid user u from ${addr(i)} port 4000 ssh2`);
    const d1 = start(conf);
    await d1.ready();
    assert.ok(d1.has(/history: new database created/), d1.output);
    let sent = 0;
    const flood = (async () => {
      for (let c = 0; c < 20; c++) {
        await attack('flood', lines.slice(c * 250, (c + 1) * 250));
        sent += 250;
        await sleep(150);
      }
    })();
    // Killed once bans are in the history and the state file (the restart resumes at its cursor).
    const stateFile = path.join(sb.dir, 'flood', 'state', 'state.json');
    await waitFor('500 bans in the history file and a state save during the flood', () => countBans(file) >= 500 && fs.existsSync(stateFile), 60_000, 20);
    d1.kill('SIGKILL');
    assert.equal((await d1.wait()).signal, 'SIGKILL');
    const sentAtKill = sent;
    const storedAtKill = countBans(file);
    const kernelAtKill = (await kernelSet('tallow6')).size;
    await flood;
    assert.ok(sentAtKill < BANS, `killed during the flood (${sentAtKill} lines sent by then)`);

    const d2 = start(conf);
    await d2.ready();
    let inKernel = 0;
    await waitFor(
      'every address in the kernel set',
      async () => (inKernel = (await kernelSet('tallow6')).size) >= BANS,
      120_000,
      500,
    ).catch((e: Error) => {
      throw new Error(`${e.message}: ${inKernel} there; daemon:\n${d2.output.slice(-3000)}`);
    });
    d2.kill('SIGTERM');
    assert.equal((await d2.wait()).code, 0, d2.output.slice(-2000));
    const kernel = await kernelSet('tallow6');
    const rows = historyBans(file);
    t.diagnostic(`killed after ${sentAtKill} lines sent, ${storedAtKill} bans stored and ${kernelAtKill} in the kernel then; after the restart: ${kernel.size} in the kernel, ${rows.length} in the history`);
    const twice = rows.filter((r) => r.n > 1).map((r) => `${r.address} x${r.n}`);
    assert.deepEqual(twice, [], 'bans stored twice');
    const stored = new Set(rows.map((r) => r.address));
    const missing = [...kernel].filter((a) => !stored.has(a));
    assert.deepEqual(missing.slice(0, 10), [], `${missing.length} kernel bans missing from the history`);
    assert.equal(kernel.size, BANS);
  });

  it('repeat offender with short bantimes: twice as long the second time, the step survives a restart; a broken file is set aside', async () => {
    const conf = writeConfig(sb, 'recidive', ['expires=3', 'threshold=1.0', 'ipv6=1', 'whitelist=127.0.0.1', 'bantime_increment=2', 'recidive_window=1h', 'bantime_max=1h']);
    fs.writeFileSync(path.join(sb.dir, 'recidive', 'patterns', 'sshd.json'), JSON.stringify(PATTERNS));
    const stateDir = path.join(sb.dir, 'recidive', 'state');
    fs.mkdirSync(stateDir, { recursive: true });
    fs.writeFileSync(path.join(stateDir, 'history.sqlite'), 'not a database\n'.repeat(500));
    // The flood's bans stay in this sandbox's kernel sets: out of the way.
    for (const set of ['tallow', 'tallow6']) await sb.run(['ipset', 'flush', set], { net: 'server' });
    const a = '203.0.113.77';
    const fail = `Failed password for root from ${a} port 4000 ssh2`;

    const d1 = start(conf);
    await d1.ready();
    assert.ok(d1.has(/history: \S+history\.sqlite is not a sound SQLite database .* moved aside to \S+history\.sqlite\.broken-/), d1.output);
    assert.equal(fs.readdirSync(stateDir).filter((f) => f.startsWith('history.sqlite.broken-')).length, 1);

    await attack('r1', [fail]);
    await d1.waitLine('first ban, 3 s', new RegExp(`ban address=${a.replace(/\./g, '\\.')} seconds=3 score=1 count=1 pattern=sshd\\.json#1 reason=threshold rule=sshd$`));
    await d1.waitLine('its expiry', new RegExp(`unban address=${a.replace(/\./g, '\\.')} reason=expired`), 15_000);
    await attack('r2', [fail]);
    await d1.waitLine('second ban, twice as long', new RegExp(`ban address=${a.replace(/\./g, '\\.')} seconds=6 .*reason=threshold step=1 rule=sshd$`));
    let left: number | null = null;
    await waitFor('the longer ban in the kernel', async () => (left = await ipsetTimeout(sb, a)) !== null, 5000, 50);
    assert.ok(left! > 3 && left! <= 6, `kernel timeout ${left}`);
    const list = await sb.run([process.execPath, CLI, 'list', '--config', conf], { net: 'server' });
    assert.match(list.stdout, /STEP/, list.stdout.slice(0, 2000));
    assert.match(list.stdout, new RegExp(`^${a.replace(/\./g, '\\.')} +sshd +all +\\S+ +1\\.00 +1 +1 +sshd\\.json#1$`, 'm'), list.stdout.split('\n').filter((l) => l.includes(a) || l.includes('STEP')).join('\n'));
    d1.kill('SIGTERM');
    assert.equal((await d1.wait()).code, 0);

    // After a restart, once the 6 s ban has run out: the third ban is step 2, from the history.
    await sleep(6500);
    const d2 = start(conf);
    await d2.ready();
    await attack('r3', [fail]);
    await d2.waitLine('third ban, step 2 after a restart', new RegExp(`ban address=${a.replace(/\./g, '\\.')} seconds=12 .*reason=threshold step=2 rule=sshd$`));
    // `tallow history` through the daemon, then straight from the file once it has stopped.
    const steps = async () => {
      const r = await sb.run([process.execPath, CLI, 'history', a, '--json', '--config', conf], { net: 'server' });
      assert.equal(r.code, 0, r.stderr);
      return (JSON.parse(r.stdout) as { items: { kind: string; seconds: number; step: number }[] }).items.filter((i) => i.kind === 'ban').map((i) => [i.seconds, i.step]);
    };
    await waitFor('the third ban stored', async () => (await steps()).length === 3, 5000, 100);
    assert.deepEqual(await steps(), [[3, 0], [6, 1], [12, 2]]);
    d2.kill('SIGTERM');
    assert.equal((await d2.wait()).code, 0);
    assert.deepEqual(await steps(), [[3, 0], [6, 1], [12, 2]]);
  });
});
