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

type RecordTuple = [string, number, number, number, number, number, string | null, string?];
type BanTuple = [string, number, string | null, ...unknown[]];
interface Saved {
  cursor: string | null;
  records: RecordTuple[];
  bans: BanTuple[];
}

/**
 * What the daemon saved, read here on its own from the files' documented format (state-log.ts's
 * header): state.json, then each whole line of state.log (`<checksum> <json>`; the first names
 * the snapshot's gen) applied in order: gone entries out, changed ones in. A torn last line (the
 * kill) is left out, as the daemon leaves it out.
 */
function readSaved(stateFile: string): Saved & { logLines: number } {
  const snap = JSON.parse(fs.readFileSync(stateFile, 'utf8')) as Saved & { gen?: string };
  const records = new Map<string, RecordTuple>(snap.records.map((r) => [`${r[7] ?? ''} ${r[0]}`, r]));
  const bans = new Map<string, BanTuple>(snap.bans.map((b) => [`${String(b[8] ?? '')} ${b[0]}`, b]));
  let cursor = snap.cursor;
  let logLines = 0;
  const logFile = path.join(path.dirname(stateFile), 'state.log');
  const lines = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').split('\n') : [];
  const whole = lines.slice(0, -1); // the text after the last newline is a torn line, or ''
  const head = whole.length ? (JSON.parse(whole[0].slice(17)) as { follows?: string }) : {};
  if (head.follows === snap.gen) {
    for (const line of whole.slice(1)) {
      const d = JSON.parse(line.slice(17)) as { cursor: string | null; r: RecordTuple[]; rx: [string, string][]; b: BanTuple[]; bx: [string, string][] };
      for (const [a, pool] of d.rx) records.delete(`${pool} ${a}`);
      for (const [a, scope] of d.bx) bans.delete(`${scope} ${a}`);
      for (const r of d.r) records.set(`${r[7] ?? ''} ${r[0]}`, r);
      for (const b of d.b) bans.set(`${String(b[8] ?? '')} ${b[0]}`, b);
      cursor = d.cursor;
      logLines++;
    }
  }
  return { cursor, records: [...records.values()], bans: [...bans.values()], logLines };
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

    // The flood, in 20 chunks of 250 lines (each address's 5 failures in a row), ~300 ms apart: long
    // enough for a snapshot and then saves appended to state.log before the kill.
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
        await sleep(300);
      }
    })();

    // Kill once saves with bans have gone to the snapshot and the log, the flood still going.
    await waitFor(
      `a state save with bans during the flood\n${d1.output}`,
      () => {
        try {
          const s = readSaved(stateFile);
          return s.bans.length >= 50 && s.logLines >= 1;
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

    // The snapshot on disk is whole (atomic rename), the log's whole lines are the saves since:
    // together they are what the restart will load.
    const saved = readSaved(stateFile);
    assert.ok(saved.cursor, 'the saved state has a journal cursor');
    const countedBefore = saved.records.reduce((n, r) => n + r[2], 0);
    assert.ok(countedBefore > 0 && countedBefore < ADDRESSES * PER_ADDRESS, `saved records counted ${countedBefore} failures`);
    // The history database lives beside the state file (its own crash safety is SQLite's, tested
    // in history.test.ts); of the state's own files, only a temp file may be left.
    const leftovers = fs.readdirSync(path.dirname(stateFile)).filter((f) => f !== 'state.json' && f !== 'state.log' && !/^history\.sqlite(-wal|-shm)?$/.test(f));
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
    t.diagnostic(`killed after ${sentAtKill} lines sent; saved: ${saved.records.length} records, ${saved.bans.length} bans, ${countedBefore} failures counted (${saved.logLines} saves in state.log)`);
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
