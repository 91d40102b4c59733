// Idle memory (issue 12): start-up's pages given back once the daemon has settled (src/memory.ts,
// native/memory.cc, src/service.ts). The mapping selection and the kernel's answers on written
// inputs; then the real CLI daemon (dry run) does it SETTLE_MS after its ready line, and with
// release_memory=no does not.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, parseConfig } from '../../src/config';
import { codeRanges, releasedText, releaseStartupPages } from '../../src/memory';
import { DryRunDaemon, READY } from './cli-daemon';

const MAPS = [
  '55d0c0000000-55d0c0800000 r--p 00000000 fe:01 1234 /usr/bin/node',
  '55d0c0800000-55d0c2400000 r-xp 00800000 fe:01 1234 /usr/bin/node',
  '55d0c2400000-55d0c2500000 r--p 02400000 fe:01 1234 /usr/bin/node',
  '55d0c2500000-55d0c2510000 rw-p 02500000 fe:01 1234 /usr/bin/node',
  '55d0c2510000-55d0c2530000 rw-p 00000000 00:00 0 ',
  '55d0c3000000-55d0c3400000 rw-p 00000000 00:00 0                          [heap]',
  '7f0000000000-7f0000800000 r--s 00000000 fe:01 99 /var/log/journal/abc/system.journal',
  '7f0000800000-7f0000900000 rw-s 00000000 fe:01 98 /var/lib/tallow/history.sqlite-shm',
  '7f1000000000-7f1000028000 r--p 00000000 fe:01 55 /usr/lib/x86_64-linux-gnu/libc.so.6',
  '7f1000028000-7f10001bd000 r-xp 00028000 fe:01 55 /usr/lib/x86_64-linux-gnu/libc.so.6',
  '7f10001bd000-7f1000215000 r--p 001bd000 fe:01 55 /usr/lib/x86_64-linux-gnu/libc.so.6',
  '7f1000215000-7f1000219000 r--p 00214000 fe:01 55 /usr/lib/x86_64-linux-gnu/libc.so.6',
  '7f1000219000-7f100021b000 rw-p 00218000 fe:01 55 /usr/lib/x86_64-linux-gnu/libc.so.6',
  '7f2000000000-7f2000010000 r-xp 00000000 fe:01 77 /opt/my addons/x.node',
  '7f3000000000-7f3000010000 r-xp 00000000 fe:01 78 /usr/lib/old.so (deleted)',
  '7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0                          [stack]',
  '7ffd00100000-7ffd00102000 r-xp 00000000 00:00 0                          [vdso]',
  'ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]',
  '',
].join('\n');

test('the read-only mappings of executable files are chosen; data, heap, journal and SQLite files, anonymous and deleted ones are not', () => {
  const got = codeRanges(MAPS).map((r) => `${r.start.toString(16)}+${r.length.toString(16)} ${r.file}`);
  assert.deepEqual(got, [
    '55d0c0000000+800000 /usr/bin/node',
    '55d0c0800000+1c00000 /usr/bin/node',
    '55d0c2400000+100000 /usr/bin/node',
    '7f1000000000+28000 /usr/lib/x86_64-linux-gnu/libc.so.6',
    '7f1000028000+195000 /usr/lib/x86_64-linux-gnu/libc.so.6',
    '7f10001bd000+58000 /usr/lib/x86_64-linux-gnu/libc.so.6',
    '7f1000215000+4000 /usr/lib/x86_64-linux-gnu/libc.so.6',
    '7f2000000000+10000 /opt/my addons/x.node',
  ]);
});

const STATUS = (rss: number, anon: number, file: number) => `Name:\tnode\nVmRSS:\t  ${rss} kB\nRssAnon:\t  ${anon} kB\nRssFile:\t  ${file} kB\n`;

test('each range is advised in turn; an unmapped range is passed over; a kernel without MADV_PAGEOUT is said once and nothing more is tried', () => {
  const calls: string[] = [];
  let status = STATUS(50000, 10000, 40000);
  const read = (f: string) => (f === '/proc/self/maps' ? MAPS : status);
  const answers = [0, 12, 0, 0, 0, 0, 0, 0];
  const r = releaseStartupPages(
    {
      pageOut: (start, length) => {
        calls.push(`${start.toString(16)}+${length.toString(16)}`);
        const a = answers[calls.length - 1];
        if (calls.length === answers.length) status = STATUS(20000, 9000, 11000);
        return a;
      },
      trimHeap: () => (calls.push('trim'), true),
    },
    read,
  );
  assert.equal(calls.length, 9);
  assert.equal(calls[8], 'trim');
  assert.equal(r.unsupported, undefined);
  assert.deepEqual([r.before.rss, r.after.rss, r.after.file], [50000, 20000, 11000]);
  assert.equal(releasedText(r), 'memory: gave back pages only start-up used: resident 48.8 -> 19.5 MiB (code of node and its libraries 39.1 -> 10.7 MiB; a page used again is read back from its file)');

  const old: string[] = [];
  const r2 = releaseStartupPages({ pageOut: (s) => (old.push(String(s)), 22), trimHeap: () => false }, read);
  assert.equal(old.length, 1);
  assert.equal(releasedText(r2), 'memory: start-up pages not given back: the kernel has no MADV_PAGEOUT (Linux 5.4 and later)');
});

test('release_memory: yes by default, no turns it off, anything else is refused naming the file and line', () => {
  assert.equal(parseConfig('', '/etc/tallow.conf').releaseMemory, true);
  assert.equal(parseConfig('release_memory=no\n', '/etc/tallow.conf').releaseMemory, false);
  assert.throws(
    () => parseConfig('expires=60\nrelease_memory=later\n', '/etc/tallow.conf'),
    (e: unknown) => e instanceof ConfigError && e.message === "/etc/tallow.conf:2: release_memory: expected 0 or 1 (or true/false, yes/no), got 'later'",
  );
});

/** KiB of clean file pages mapped by `pid` alone (/proc/PID/smaps Private_Clean): what the kernel
 *  can take back (it keeps pages another process maps, such as this runner's node binary or
 *  another tallow's addon). */
function privateCode(pid: number): number {
  let on = false;
  let kib = 0;
  for (const line of fs.readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) on = head[1].startsWith('/');
    const rss = /^Private_Clean:\s+(\d+) kB/.exec(line);
    if (rss && on) kib += Number(rss[1]);
  }
  return kib;
}

const SETTLE_MS = 1000;

test('the daemon gives back its start-up pages once settled (the pages of code only it maps), again after a reload, and keeps working; with release_memory=no it does not', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tallow-memory-${process.pid}-`));
  const runs: DryRunDaemon[] = [];
  t.after(async () => {
    await Promise.all(runs.map((r) => r.stop()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const on = new DryRunDaemon(path.join(dir, 'on'), [], { TALLOW_SETTLE_MS: String(SETTLE_MS) });
  runs.push(on);
  await on.until(READY, 30_000);
  const before = privateCode(on.child.pid!);
  assert.ok(before >= 2048, `start-up's code is resident at first: ${before} KiB`);
  await on.until(/memory: gave back pages only start-up used: resident [\d.]+ -> [\d.]+ MiB/, 30_000);
  const after = privateCode(on.child.pid!);
  assert.ok(after <= before / 2, `given back: ${before} -> ${after} KiB`);
  // A reload runs start-up's code again (configuration, patterns): given back again after it.
  on.child.kill('SIGHUP');
  await on.until(/memory: gave back[^]*SIGHUP: reloading[^]*memory: gave back/, 30_000);
  // What stopping runs comes back from the files: it stops cleanly.
  assert.equal(await on.stop(), 0);
  assert.match(on.out, /stopped; bans stay in the firewall/);

  const off = new DryRunDaemon(path.join(dir, 'off'), ['release_memory=no'], { TALLOW_SETTLE_MS: String(SETTLE_MS) });
  runs.push(off);
  await off.until(READY, 30_000);
  const kept = privateCode(off.child.pid!);
  await new Promise((r) => setTimeout(r, SETTLE_MS + 1500));
  const still = privateCode(off.child.pid!);
  assert.ok(kept >= 2048 && still >= kept * 0.75, `kept with release_memory=no: ${kept} -> ${still} KiB`);
  assert.doesNotMatch(off.out, /memory:/);
  assert.equal(await off.stop(), 0);
});
