// kill -9 during a flood (issue 6): 5,000 failures (1,000 addresses x 5, sshd's wording, sent as
// root through the sandbox's /dev/log with SYSLOG_IDENTIFIER=sshd, which the shipped-style filter
// accepts). The daemon is killed mid-flood; on restart the state file is intact (the last save
// or the one before), the journal resumes at its saved cursor without replaying what the saved
// records already counted, and every ban in the kernel is known to the daemon again.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createSandbox, sleep, waitFor, type Sandbox } from '../env/sandbox';
import { CLI, DaemonProc, SSHD_FILTER, writeConfig } from './e2e-daemon';

const ADDRESSES = 1000;
const PER_ADDRESS = 5;
const PATTERNS = [{ filter: SSHD_FILTER, items: [{ ban: 0, score: 0.2, pattern: '^Failed password for (?:invalid user )?\\S+ from <IP> port <PORT> ssh2$' }] }];

const addr = (i: number): string => `2001:db8:c::${(i + 1).toString(16)}`;

let sb: Sandbox;
const daemons: DaemonProc[] = [];

async function ctl(conf: string, ...args: string[]) {
  return sb.run([process.execPath, CLI, ...args, '--config', conf], { net: 'server', timeoutMs: 20000 });
}

async function kernelSet(): Promise<Set<string>> {
  const r = await sb.run(['ipset', 'list', 'tallow6', '-o', 'save'], { net: 'server' });
  assert.equal(r.code, 0, r.stderr);
  const out = new Set<string>();
  for (const l of r.stdout.split('\n')) {
    const m = /^add tallow6 (\S+)/.exec(l.trim());
    if (m) out.add(m[1]);
  }
  return out;
}

interface Saved {
  cursor: string | null;
  records: [string, number, number, number, number, number, number, string | null][];
  bans: [string, number, string | null][];
}

describe('kill -9 during a flood', { timeout: 300_000 }, () => {
  before(async () => {
    sb = await createSandbox({ network: true, journald: true });
  });
  after(async () => {
    for (const d of daemons) if (!d.exit) d.kill('SIGKILL');
    await sb?.destroy();
  });

  it('restart finds the last saved state, resumes without replay, and knows every kernel ban', async (t) => {
    const conf = writeConfig(sb, 'crash', ['expires=3600', 'threshold=1.0', 'ipv6=1', 'whitelist=127.0.0.1']);
    fs.writeFileSync(path.join(sb.dir, 'crash', 'patterns', 'sshd.json'), JSON.stringify(PATTERNS));
    const stateFile = path.join(sb.dir, 'crash', 'state', 'state.json');

    // The flood, in 20 chunks of 250 lines (each address's 5 failures in a row), ~150 ms apart.
    const lines: string[] = [];
    for (let i = 0; i < ADDRESSES; i++) {
      for (let k = 0; k < PER_ADDRESS; k++) lines.push(`Failed password for invalid user u${k} from ${addr(i)} port ${10000 + k} ssh2`);
    }
    const chunks: string[] = [];
    for (let c = 0; c < 20; c++) {
      const f = path.join(sb.dir, 'crash', `flood-${c}.txt`);
      fs.writeFileSync(f, lines.slice(c * 250, (c + 1) * 250).join('\n') + '\n');
      chunks.push(f);
    }

    const d1 = new DaemonProc(sb, ['--config', conf]);
    daemons.push(d1);
    await d1.ready();

    let sent = 0;
    const flood = (async () => {
      for (const f of chunks) {
        const r = await sb.run(['logger', '-t', 'sshd', '-f', f]);
        assert.equal(r.code, 0, r.stderr);
        sent += 250;
        await sleep(150);
      }
    })();

    // Kill once a save with bans has happened and the flood is still going.
    await waitFor(
      `a state save with bans during the flood\n${d1.output}`,
      () => {
        try {
          return (JSON.parse(fs.readFileSync(stateFile, 'utf8')) as Saved).bans.length >= 50;
        } catch {
          return false;
        }
      },
      30000,
      20,
    );
    d1.kill('SIGKILL');
    const exit = await d1.wait();
    assert.equal(exit.signal, 'SIGKILL');
    const sentAtKill = sent;
    await flood;
    assert.ok(sentAtKill < ADDRESSES * PER_ADDRESS, `killed during the flood (${sentAtKill} lines sent by then)`);

    // The file on disk is whole (atomic rename): it parses, and is what the restart will load.
    const saved = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as Saved;
    assert.ok(saved.cursor, 'the saved state has a journal cursor');
    const countedBefore = saved.records.reduce((n, r) => n + r[2], 0);
    assert.ok(countedBefore > 0 && countedBefore < ADDRESSES * PER_ADDRESS, `saved records counted ${countedBefore} failures`);
    // The history database lives beside the state file (its own crash safety is SQLite's, tested
    // in history.test.ts); of the state file's own, only a temp file may be left.
    const leftovers = fs.readdirSync(path.dirname(stateFile)).filter((f) => f !== 'state.json' && !/^history\.sqlite(-wal|-shm)?$/.test(f));
    assert.ok(leftovers.every((f) => f.endsWith('.tmp')), `only a temp file may be left by the kill: ${leftovers.join(' ')}`);

    const d2 = new DaemonProc(sb, ['--config', conf]);
    daemons.push(d2);
    await d2.ready();
    assert.ok(!d2.has(/state file problem/), d2.output);
    assert.ok(d2.has(new RegExp(`state restored: ${saved.records.length} records, ${saved.bans.length} active bans`)), d2.output);
    assert.ok(d2.has(/starting at saved cursor /), d2.output);

    // Catch up: every address reaches its fifth failure (some before the kill, the rest now).
    let items: { address: string; count: number; score: number }[] = [];
    await waitFor(
      `all ${ADDRESSES} addresses banned after the restart\n${d2.output.slice(-3000)}`,
      async () => {
        const r = await ctl(conf, 'list', '--json');
        if (r.code !== 0) return false;
        items = JSON.parse(r.stdout);
        return items.length >= ADDRESSES;
      },
      60000,
      500,
    );
    const st = await ctl(conf, 'status');
    t.diagnostic(`killed after ${sentAtKill} lines sent; saved: ${saved.records.length} records, ${saved.bans.length} bans, ${countedBefore} failures counted`);
    assert.equal(st.code, 0, st.stderr);
    const matches = Number(/^matches: +(\d+)$/m.exec(st.stdout)?.[1]);
    // Nothing replayed, nothing lost: what the saved records counted plus what the new run matched
    // is exactly the flood.
    assert.equal(countedBefore + matches, ADDRESSES * PER_ADDRESS, `saved ${countedBefore} + matched after restart ${matches}`);
    const byAddress = new Map(items.map((i) => [i.address, i]));
    for (let i = 0; i < ADDRESSES; i++) {
      const it = byAddress.get(addr(i));
      assert.ok(it, `${addr(i)} is banned and known`);
      assert.equal(it!.count, PER_ADDRESS, `${addr(i)} counted ${it!.count} failures, not ${PER_ADDRESS}`);
    }
    // Every ban in the kernel is known to the daemon.
    await waitFor('the kernel set to hold every ban', async () => (await kernelSet()).size >= ADDRESSES, 20000, 200);
    const kernel = await kernelSet();
    const unknown = [...kernel].filter((a) => !byAddress.has(a));
    assert.deepEqual(unknown, [], 'kernel bans unknown to the daemon');
    d2.kill('SIGTERM');
    assert.equal((await d2.wait()).code, 0);
  });
});
