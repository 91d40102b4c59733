// Watching real journal files while systemd-journal-remote writes them: every entry arrives,
// in order, once, across new files and a journald-style rotation (rename + new file).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Journal, JournalEntry, FOLLOW_WINDOW_MS } from '../../src/journal';
import { writeJournal, writeJournalAsync, numbered, openFds } from '../fixtures/journal-export';

const root = fs.mkdtempSync(path.join(os.tmpdir(), `tallow-journal-live-${process.pid}-`));
after(() => fs.rmSync(root, { recursive: true, force: true }));
let n = 0;
function freshDir(): string {
  const d = path.join(root, `d${n++}`);
  fs.mkdirSync(d);
  return d;
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Collects messages from batches() until `want` arrived (or the deadline), then closes. */
async function collect(j: Journal, want: number, timeoutMs = 15000): Promise<string[]> {
  const got: string[] = [];
  const deadline = setTimeout(() => j.close(), timeoutMs);
  try {
    for await (const batch of j.batches()) {
      for (const e of batch) got.push(e.fields.MESSAGE);
      if (got.length >= want) break;
    }
  } finally {
    clearTimeout(deadline);
  }
  return got;
}

const expected = (from: number, count: number) => Array.from({ length: count }, (_, i) => `entry ${from + i}`);

test('live: from an empty directory, through appends, a rotation and a new file, all entries once and in order', async () => {
  const d = freshDir();
  const j = Journal.open({ directory: d, fields: ['MESSAGE'] });
  try {
    j.seek({ at: 'tail' });
    const reading = collect(j, 200);
    await sleep(50);
    const sys = path.join(d, 'system.journal');
    await writeJournalAsync(sys, numbered(0, 50));
    await sleep(30);
    await writeJournalAsync(sys, numbered(50, 50));
    await sleep(30);
    // journald's rotation: the active file is renamed to an archived name, a new one starts.
    fs.renameSync(sys, path.join(d, 'system@0123456789abcdef0123456789abcdef-0000000000000001-0006000000000000.journal'));
    await writeJournalAsync(sys, numbered(100, 50));
    await sleep(30);
    await writeJournalAsync(path.join(d, 'user-1000.journal'), numbered(150, 50));
    const got = await reading;
    assert.deepEqual(got, expected(0, 200));
  } finally {
    j.close();
  }
});

test('live: matches apply to new entries; the cursor follows what was returned', async () => {
  const d = freshDir();
  const file = path.join(d, 'a.journal');
  writeJournal(file, numbered(0, 3));
  const j = Journal.open({ directory: d, fields: ['MESSAGE', '_EXE'], matches: [['_EXE=/usr/sbin/sshd']] });
  try {
    j.seek({ at: 'tail' });
    const reading = collect(j, 4);
    await sleep(30);
    await writeJournalAsync(file, [...numbered(3, 2), ...numbered(5, 3, { _EXE: '/usr/bin/logger' }), ...numbered(8, 2)]);
    assert.deepEqual(await reading, ['entry 3', 'entry 4', 'entry 8', 'entry 9']);
    assert.match(j.cursor ?? '', /;i=a;/);
  } finally {
    j.close();
  }
});

test('catching up drains in batches and lets the event loop run between them', async () => {
  const d = freshDir();
  writeJournal(path.join(d, 'a.journal'), numbered(0, 5000));
  const j = Journal.open({ directory: d, fields: ['MESSAGE'], batchSize: 1000 });
  let ticks = 0;
  const ticker = setInterval(() => ticks++, 0);
  const ticksAt: number[] = [];
  let total = 0;
  try {
    const deadline = setTimeout(() => j.close(), 15000);
    for await (const batch of j.batches()) {
      assert.ok(batch.length <= 1000);
      ticksAt.push(ticks);
      total += batch.length;
      if (total >= 5000) break;
    }
    clearTimeout(deadline);
  } finally {
    clearInterval(ticker);
    j.close();
  }
  assert.equal(total, 5000);
  assert.equal(ticksAt.length, 5);
  // A timer fired between the first and the last batch: the loop was not starved.
  assert.ok(ticksAt[4] > ticksAt[0], `timer ticks per batch: ${ticksAt.join(',')}`);
});

test('close() ends a waiting iteration, also from inside the loop; no fd leak', async () => {
  const d = freshDir();
  writeJournal(path.join(d, 'a.journal'), numbered(0, 2));
  const before = openFds();
  for (let i = 0; i < 10; i++) {
    const j = Journal.open({ directory: d, fields: ['MESSAGE'] });
    setTimeout(() => j.close(), 20);
    let batches = 0;
    for await (const b of j.batches()) {
      batches++;
      assert.equal(b.length, 2);
    }
    assert.equal(batches, 1);
    j.close();
  }
  const k = Journal.open({ directory: d, fields: ['MESSAGE'] });
  for await (const _ of k.batches()) k.close();
  assert.equal(k.isClosed, true);
  // A broken-off iteration stops watching; the journal stays usable.
  const m = Journal.open({ directory: d, fields: ['MESSAGE'] });
  for await (const _ of m.batches()) break;
  m.seek({ at: 'head' });
  assert.equal(m.readBatch().length, 2);
  m.close();
  await sleep(10); // uv handles are freed in their close callbacks
  assert.equal(openFds(), before);
});

function runChild(script: string, args: string[]): { code: number | null; out: string } {
  const r = spawnSync(process.execPath, ['--expose-gc', path.join(__dirname, script), ...args], { encoding: 'utf8', timeout: 30000 });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

test('unclosed journals are closed by garbage collection (fds come back)', () => {
  const d = freshDir();
  writeJournal(path.join(d, 'a.journal'), numbered(0, 3));
  const r = runChild('journal-gc-child.js', [d]);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /^ok /m);
});

test('worker threads that open, watch and exit (or are terminated) do not crash the process', () => {
  const d = freshDir();
  writeJournal(path.join(d, 'a.journal'), numbered(0, 3));
  const r = runChild('journal-worker-child.js', [d]);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /^ok /m);
});

export type { JournalEntry };

test('follow window: after entries arrive the reader looks again on its own for a while, then only waits', async () => {
  const d = freshDir();
  const file = path.join(d, 'a.journal');
  writeJournal(file, numbered(0, 1));
  const j = Journal.open({ directory: d, fields: ['MESSAGE'] });
  try {
    j.seek({ at: 'head' });
    const got: string[] = [];
    const reading = (async () => {
      for await (const batch of j.batches()) for (const e of batch) got.push(e.fields.MESSAGE);
    })();
    await sleep(300);
    assert.deepEqual(got, ['entry 0']);
    // Inside the window (entries came < FOLLOW_WINDOW_MS ago) it has been looking again by itself.
    const inWindow = j.stats.polls;
    assert.ok(inWindow > 0, 'no follow polls inside the window');
    // Entries written now are still found (by a poll or by the notification), once each.
    await writeJournalAsync(file, numbered(1, 3));
    await sleep(300);
    assert.deepEqual(got, expected(0, 4));
    // Once the window has closed, a quiet journal is only waited on: no more polls.
    await sleep(FOLLOW_WINDOW_MS + 300);
    const closed = j.stats.polls;
    await sleep(500);
    assert.equal(j.stats.polls, closed, 'the reader kept polling a quiet journal');
    j.close();
    await reading;
  } finally {
    j.close();
  }
});
