// `allow` requests and drop-ins in a daemon run in process (a dry run over an empty journal
// directory, fed batches directly): a reload rereads the drop-ins; `allow add` writes the
// daemon's drop-in, is in force at once and lifts a ban it covers; a broken configuration on
// disk leaves everything as it was.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Daemon } from '../../src/daemon';
import { Log } from '../../src/log';
import type { JournalEntry } from '../../src/journal';

const SSHD = '/usr/sbin/sshd';
const PATTERNS = [{ filter: `_EXE=${SSHD}`, items: [{ ban: 0, score: 0.5, pattern: '^Failed password for \\S+ from <IP> port <PORT> ssh2$' }] }];

function setup(t: { after(fn: () => unknown): void }) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tallow-allow-${process.pid}-`));
  const shipped = path.join(dir, 'shipped');
  const journal = path.join(dir, 'journal');
  for (const d of [shipped, journal]) fs.mkdirSync(d);
  fs.writeFileSync(path.join(shipped, 'sshd.json'), JSON.stringify(PATTERNS));
  const conf = path.join(dir, 'tallow.conf');
  fs.writeFileSync(conf, [`patterns_dir=${dir}/local`, `state_dir=${dir}/state`, `socket=${dir}/sock`, 'expires=60', 'whitelist=192.0.2.1', ''].join('\n'));
  const lines: string[] = [];
  const log = new Log({ journal: false, timestamps: false, write: (_l, s) => lines.push(s) });
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return { dir, conf, dropins: `${conf}.d`, lines, opts: { configFile: conf, explicitConfig: true, journalDir: journal, dryRun: true, log, shippedPatterns: shipped } };
}

let seq = 0;
const failed = (a: string): JournalEntry => ({ cursor: `c${seq++}`, realtime: Date.now() * 1000, fields: { MESSAGE: `Failed password for root from ${a} port 4242 ssh2`, _EXE: SSHD } });

test('reload rereads the drop-ins: an entry added there applies; a bad line there is refused with its file:line', async (t) => {
  const s = setup(t);
  const d = await Daemon.start(s.opts);
  t.after(() => d.stop());
  fs.mkdirSync(s.dropins);
  fs.writeFileSync(path.join(s.dropins, '10-office.conf'), 'whitelist=198.51.100.0/24\n');
  assert.equal(d.reload(), true);
  assert.deepEqual(d.engine.config.whitelist, ['192.0.2.1', '198.51.100.0/24']);
  d.process([failed('198.51.100.9'), failed('198.51.100.9')]);
  assert.equal(d.list().length, 0, 'the drop-in\'s network is allowed');
  fs.writeFileSync(path.join(s.dropins, '20-bad.conf'), '\nthreshold=abc\n');
  assert.equal(d.reload(), false);
  assert.ok(s.lines.some((l) => l.startsWith(`error: reload refused, still running the previous configuration: ${s.dropins}/20-bad.conf:2: threshold: `)), s.lines.join('\n'));
});

test('allow add: written to the daemon\'s drop-in, in force at once, lifts a ban it covers; remove takes it out', async (t) => {
  const s = setup(t);
  const umask = process.umask(0o077);
  t.after(() => process.umask(umask));
  const d = await Daemon.start(s.opts);
  t.after(() => d.stop());
  assert.ok((await d.handle({ cmd: 'ban', address: '203.0.113.77', seconds: 120 })).ok);
  const file = path.join(s.dropins, '50-tallow-allow.conf');
  const add = await d.handle({ cmd: 'allow', op: 'add', entry: '203.0.113.5/24' });
  assert.deepEqual(add, { ok: true, result: { entry: '203.0.113.0/24', file, changed: true, lifted: ['203.0.113.77 (all ports)'] } });
  assert.deepEqual(d.list(), []);
  assert.ok(s.lines.includes(`info: allowlist: 203.0.113.0/24 added (tallow allow add) file=${file} lifted="203.0.113.77 (all ports)"`), s.lines.join('\n'));
  assert.match(fs.readFileSync(file, 'utf8'), /^whitelist=203\.0\.113\.0\/24$/m);
  // Modes whatever the umask (tallow.service has UMask=0077).
  assert.deepEqual([fs.statSync(file).mode & 0o777, fs.statSync(s.dropins).mode & 0o777], [0o644, 0o755]);
  d.process([failed('203.0.113.8'), failed('203.0.113.8')]);
  assert.deepEqual(d.list(), [], 'an address of the new entry is not banned');
  assert.deepEqual(await d.handle({ cmd: 'allow', op: 'list' }), { ok: true, result: { entries: ['192.0.2.1', '203.0.113.0/24'], added: ['203.0.113.0/24'], file } });
  const rm = await d.handle({ cmd: 'allow', op: 'remove', entry: '203.0.113.0/24' });
  assert.deepEqual(rm, { ok: true, result: { entry: '203.0.113.0/24', file, changed: true } });
  assert.deepEqual(d.engine.config.whitelist, ['192.0.2.1']);
  d.process([failed('203.0.113.9'), failed('203.0.113.9')]);
  assert.deepEqual(d.list().map((b) => b.address), ['203.0.113.9']);
  const notOurs = await d.handle({ cmd: 'allow', op: 'remove', entry: '192.0.2.1' });
  assert.deepEqual(notOurs, { ok: false, error: `192.0.2.1 was not added with tallow allow add; it comes from ${s.conf} or another drop-in: remove it there` });
});

test('allow add with a configuration on disk that does not load: refused with its file:line, nothing changed', async (t) => {
  const s = setup(t);
  const d = await Daemon.start(s.opts);
  t.after(() => d.stop());
  const file = path.join(s.dropins, '50-tallow-allow.conf');
  assert.ok((await d.handle({ cmd: 'allow', op: 'add', entry: '198.51.100.7' })).ok);
  const before = fs.readFileSync(file, 'utf8');
  fs.appendFileSync(s.conf, 'expires=soon\n');
  const r = await d.handle({ cmd: 'allow', op: 'add', entry: '2001:db8::/32' });
  assert.deepEqual(r, { ok: false, error: `not changed: the configuration does not load: ${s.conf}:6: expires: expected a whole number from 1 to 2147483, got 'soon'`, exitCode: 78 });
  assert.equal(fs.readFileSync(file, 'utf8'), before);
  assert.deepEqual(d.engine.config.whitelist, ['192.0.2.1', '198.51.100.7']);
  assert.deepEqual(fs.readdirSync(s.dropins), ['50-tallow-allow.conf'], 'no temporary file left');
});

test('allow add keeps the values made with tallow set (an explicit reload drops them, as documented)', async (t) => {
  const s = setup(t);
  const d = await Daemon.start(s.opts);
  t.after(() => d.stop());
  const get = async () => ((await d.handle({ cmd: 'get', key: 'sshd.bantime' })) as { ok: true; result: { value: number } }).result.value;
  assert.ok((await d.handle({ cmd: 'set', key: 'sshd.bantime', value: '7200' })).ok);
  assert.equal(await get(), 7200);
  assert.ok((await d.handle({ cmd: 'allow', op: 'add', entry: '198.51.100.7' })).ok);
  assert.equal(await get(), 7200, 'still the value set');
  assert.deepEqual([...d.runtimeSettings], [['sshd', { bantime: 7200 }]]);
  assert.ok(!s.lines.some((l) => l.includes('dropped by the reload')), s.lines.join('\n'));
  assert.equal(d.reload(), true);
  assert.equal(await get(), 60, 'tallow.conf\'s expires=60 again');
  assert.ok(s.lines.some((l) => l.includes('settings made with tallow set dropped by the reload: sshd.bantime')), s.lines.join('\n'));
});
