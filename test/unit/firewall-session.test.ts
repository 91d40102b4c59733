// The long-lived tool session (against a stand-in for `ipset -` that answers like ipset 7.17), and
// the queue's side of it: refused elements found by halving, the cheap probe that notices an
// emptied set between the full checks.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Family } from '../../src/address';
import { RefusedError, type BanEntry, type FirewallBackend, type KernelBan, type Logger } from '../../src/firewall/backend';
import { Firewall } from '../../src/firewall/index';
import { ipsetApply, ipsetPresent, ipsetSession } from '../../src/firewall/ipset';
import { CommandError, execCount } from '../../src/firewall/exec';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tallow-session-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

// ipset's interactive mode as far as tallow uses it: errors on stderr, one line per refused line,
// later lines still done; `-o X` is refused naming X.
const FAKE_IPSET = `#!${process.execPath}
const sets = { tallow: new Set(), tallow6: new Set() };
let buf = '';
process.stdin.on('data', (d) => {
  buf += d;
  let i;
  while ((i = buf.indexOf('\\n')) >= 0) {
    const w = buf.slice(0, i).trim().split(/\\s+/);
    buf = buf.slice(i + 1);
    const err = (m) => process.stderr.write('ipset v7.17: ' + m + '\\n');
    if (w[0] === '-o') err("Syntax error: unknown output mode '" + w[1] + "'");
    else if (w[0] === 'destroy') delete sets[w[1]];
    else if (!sets[w[1]]) err('The set with the given name does not exist');
    else if (w[2] === '0.0.0.0' || w[2] === '::') err('Null-valued element, cannot be stored in a hash type of set');
    else if (w[0] === 'add') sets[w[1]].add(w[2]);
    else if (w[0] === 'del') sets[w[1]].delete(w[2]);
    else if (w[0] === 'test') process.stderr.write(sets[w[1]].has(w[2]) ? 'Warning: ' + w[2] + ' is in set ' + w[1] + '.\\n' : w[2] + ' is NOT in set ' + w[1] + '.\\n');
  }
});
`;
const tool = path.join(dir, 'ipset');
fs.writeFileSync(tool, FAKE_IPSET, { mode: 0o755 });

const quiet: Logger = { info() {}, warn() {}, error() {}, debug() {} };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ban = (address: string, family: Family = 4): BanEntry => ({ address, family, seconds: 60 });

describe('ToolSession (ipset -)', () => {
  test('one process for many batches; a refused line is reported and later lines still land', async () => {
    const s = ipsetSession(tool);
    const before = execCount();
    for (let i = 1; i <= 20; i++) await ipsetApply(s, [ban(`192.0.2.${i}`)], [], [4, 6]);
    await assert.rejects(ipsetApply(s, [ban('192.0.2.30'), ban('0.0.0.0'), ban('192.0.2.31')], [], [4, 6]), (e: Error) => e instanceof RefusedError && /Null-valued/.test(e.message));
    await ipsetApply(s, [ban('192.0.2.32')], [{ address: '192.0.2.1', family: 4 }], [4, 6]);
    assert.equal(execCount() - before, 1, 'one process for 22 batches');
    assert.deepEqual(await ipsetPresent(s, [{ address: '192.0.2.31', family: 4 }, { address: '192.0.2.32', family: 4 }, { address: '192.0.2.1', family: 4 }, { address: '0.0.0.0', family: 4 }]), [true, true, false, false]);
    await s.close();
  });

  test('a missing set is a failure of the whole batch (retried), not a refused element (dropped)', async () => {
    const s = ipsetSession(tool);
    await s.exec(['destroy tallow']);
    const e = await ipsetApply(s, [ban('192.0.2.1')], [], [4, 6]).then(() => null, (x: Error) => x);
    assert.ok(e instanceof CommandError && !(e instanceof RefusedError) && /does not exist/.test(e.message), String(e));
    await s.close();
  });

  test('killed from outside: the next batch goes to a new process and lands', async () => {
    const s = ipsetSession(tool);
    await ipsetApply(s, [ban('192.0.2.40')], [], [4]);
    const pid = s.pid!;
    process.kill(pid, 'SIGKILL');
    await sleep(50);
    await ipsetApply(s, [ban('192.0.2.41')], [], [4]);
    assert.notEqual(s.pid, pid);
    assert.equal(s.starts, 2);
    assert.deepEqual(await ipsetPresent(s, [{ address: '192.0.2.41', family: 4 }]), [true]);
    await s.close();
  });

  test('a process that was sent recycleBytes is replaced between requests (nft -i keeps its history), nothing lost', async () => {
    const { ToolSession } = await import('../../src/firewall/session');
    const s = new ToolSession([tool, '-'], { sentinel: (tag) => `-o ${tag}` }, 10_000, 200);
    for (let i = 1; i <= 10; i++) await ipsetApply(s, [ban(`192.0.2.${i}`)], [], [4]);
    assert.ok(s.starts >= 3, `replaced as it went: ${s.starts} processes`);
    await ipsetApply(s, [ban('192.0.2.11')], [], [4]);
    assert.deepEqual(await ipsetPresent(s, [{ address: '192.0.2.11', family: 4 }]), [true]);
    await s.close();
  });

  test('a tool that cannot start is a CommandError, not a hang', async () => {
    const s = ipsetSession(path.join(dir, 'no-such-ipset'));
    await assert.rejects(ipsetApply(s, [ban('192.0.2.1')], [], [4]), (e: Error) => e instanceof CommandError && /not found/.test(e.message));
    await s.close();
  });

  test('close() waits for a tool slow to exit even when nothing else keeps the process alive (nft -i takes seconds)', async () => {
    // Echoes each line to stderr (the sentinel's answer), then lingers 5 s after its input ends.
    const slow = path.join(dir, 'slow-tool');
    fs.writeFileSync(slow, '#!/bin/sh\nwhile read l; do echo "$l" >&2; done\nexec sleep 5\n', { mode: 0o755 });
    const session = path.join(__dirname, '../../src/firewall/session.js');
    const code = `const { ToolSession } = require(${JSON.stringify(session)});` +
      `(async () => { const s = new ToolSession([${JSON.stringify(slow)}], { sentinel: (t) => t }, 10000); await s.exec(['x']); await s.close(); console.log('closed'); })();`;
    const { execFileSync } = await import('node:child_process');
    const out = execFileSync(process.execPath, ['-e', code], { encoding: 'utf8', timeout: 20_000 });
    assert.equal(out.trim(), 'closed', 'the process lived until the tool was gone');
  });
});

/** Refuses any batch holding a poisoned address (as ipset's session reports it); present() for the probe. */
class RefusingBackend implements FirewallBackend {
  readonly name = 'refusing';
  kernel = new Map<string, Family>();
  calls = 0;
  constructor(private readonly poison: Set<string>) {}
  describe() {
    return 'refusing';
  }
  async setup() {}
  async check() {
    return true;
  }
  async apply(add: BanEntry[], remove: { address: string; family: Family }[]) {
    this.calls++;
    const bad = [...add, ...remove].filter((e) => this.poison.has(e.address));
    // Like ipset: the good lines land even when another line is refused.
    for (const e of add) if (!this.poison.has(e.address)) this.kernel.set(e.address, e.family);
    for (const e of remove) this.kernel.delete(e.address);
    if (bad.length) throw new RefusedError('ipset refused: Null-valued element, cannot be stored in a hash type of set');
  }
  async list(): Promise<KernelBan[]> {
    return [...this.kernel].map(([address, family]) => ({ address, family, remaining: 60, scope: '' }));
  }
  async present(sample: { address: string; family: Family }[]) {
    return sample.map((s) => this.kernel.has(s.address));
  }
}

describe('Firewall queue with refusals and the probe', () => {
  test('refused elements are found by halving, named, reported once; the others land and nothing is retried', async () => {
    const be = new RefusingBackend(new Set(['0.0.0.0', '::']));
    const lines: string[] = [];
    const log: Logger = { ...quiet, error: (msg, f) => void lines.push(`${msg} ${f?.address}`) };
    const refused: string[] = [];
    const fw = new Firewall(be, log, { retryBaseMs: 10, onRefused: (a) => void refused.push(a) });
    await fw.start();
    const batch = Array.from({ length: 64 }, (_, i) => ban(`198.51.100.${i + 1}`));
    batch.splice(20, 0, ban('0.0.0.0'));
    batch.splice(50, 0, ban('::', 6));
    fw.ban(batch);
    const [bad, good] = await Promise.all([fw.outcome('0.0.0.0'), fw.outcome('198.51.100.64')]);
    await fw.flush();
    assert.match(String(bad), /Null-valued/);
    assert.equal(good, null);
    assert.deepEqual(refused.sort(), ['0.0.0.0', '::']);
    assert.equal(be.kernel.size, 64, 'every other element landed');
    assert.ok(lines.some((l) => /refused a ban/.test(l) && l.endsWith(' 0.0.0.0')), lines.join('\n'));
    assert.ok(!lines.some((l) => /will retry/.test(l)), 'no retry loop');
    assert.ok(be.calls <= 1 + 2 * 2 * Math.ceil(Math.log2(66)), `halving, not one call per element: ${be.calls}`);
    fw.ban([ban('198.51.100.200')]);
    await fw.flush();
    assert.ok(be.kernel.has('198.51.100.200'), 'a later ban is not held back');
    await fw.close();
  });

  test('a set emptied from outside is noticed by the probe and re-filled long before the full check', async () => {
    const be = new RefusingBackend(new Set());
    const held = [{ address: '203.0.113.5', family: 4 as Family, expiry: Date.now() + 600_000 }];
    const fw = new Firewall(be, quiet, { checkIntervalMs: 3_600_000, probeIntervalMs: 50, held: () => held });
    await fw.start();
    fw.ban([ban('203.0.113.5')]);
    await fw.flush();
    be.kernel.clear();
    for (let i = 0; i < 100 && !be.kernel.has('203.0.113.5'); i++) await sleep(20);
    assert.ok(be.kernel.has('203.0.113.5'), 're-filled by the probe');
    await fw.close();
  });
});
