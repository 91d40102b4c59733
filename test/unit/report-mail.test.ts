// The daily report as a mail: `tallow report --mail NAME` through a mail action's sendmail, and
// the daemon's timer that runs that command once a day for the period since the previous run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SqliteStore } from '../../src/history/sqlite';
import { reportRun } from '../../src/report/cli';
import { ReportTimer } from '../../src/report/timer';
import type { MailAction } from '../../src/actions/settings';
import { collector, decodeWords, FakeClock, parseMail, program } from './actions-helpers';
import { collect, tmpdir } from './history-helpers';
import { fixtureRows, UNTIL } from './report-fixture';

async function setup(t: { after(fn: () => unknown): void }, sendmailBody: string) {
  const dir = tmpdir(t);
  const state = path.join(dir, 'state');
  const writer = new SqliteStore(path.join(state, 'history.sqlite'), collect());
  await writer.write('run-1', fixtureRows());
  await writer.close();
  const sendmail = program(dir, 'sendmail', sendmailBody);
  const conf = path.join(dir, 'tallow.conf');
  fs.writeFileSync(conf, `state_dir=${state}\nsocket=${dir}/none.sock\naction.admin.mail_to=root@example.org\naction.admin.sendmail=${sendmail}\naction.hook.url=http://127.0.0.1:9/\n`);
  const run = async (...args: string[]) => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await reportRun([...args, '--config', conf], { out: (s) => void out.push(s), err: (s) => void err.push(s) }, UNTIL + 3_600_000);
    return { code, out: out.join(''), err: err.join('') };
  };
  return { dir, run };
}

const DAY = ['--since', '2026-03-10T06:00Z', '--until', '2026-03-11T06:00Z'];

test('tallow report --mail: one multipart mail carrying the same text and HTML as the printed report', async (t) => {
  const { dir, run } = await setup(t, `#!/bin/sh\nprintf '%s\\n' "$@" > "${'$'}0.args"\ncat > "${'$'}0.mail"\n`);
  const r = await run(...DAY, '--mail', 'admin');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^report of 2026-03-10T06:00:00\.000Z to 2026-03-11T06:00:00\.000Z mailed to root@example\.org \(action\.admin\)\n$/);
  const sent = path.join(dir, 'sendmail');
  assert.deepEqual(fs.readFileSync(`${sent}.args`, 'utf8').trim().split('\n'), ['-t', '-oi']);
  const mail = parseMail(fs.readFileSync(`${sent}.mail`, 'utf8'));
  assert.equal(mail.headers.get('to'), 'root@example.org');
  // The fixture's period holds 11 bans (counted by hand in report.test.ts).
  assert.equal(decodeWords(mail.headers.get('subject')!), `tallow report for ${os.hostname()}: 11 bans (2026-03-10 06:00 to 2026-03-11 06:00 UTC)`);
  assert.equal(mail.text, (await run(...DAY)).out);
  assert.equal(mail.html, (await run(...DAY, '--format', 'html')).out);
});

test('tallow report --mail: an unknown or non-mail action is a usage error naming the mail actions; a failing sendmail exits 1 with its words', async (t) => {
  const { run } = await setup(t, '#!/bin/sh\necho "sendmail: queue full" >&2\nexit 75\n');
  for (const name of ['nosuch', 'hook']) {
    const r = await run(...DAY, '--mail', name);
    assert.equal(r.code, 64);
    assert.match(r.err, new RegExp(`--mail "${name}": no mail action of that name in .*tallow\\.conf \\(mail actions: admin\\)`));
  }
  const r = await run(...DAY, '--mail', 'admin');
  assert.equal(r.code, 1);
  assert.match(r.err, /mail to root@example\.org \(action\.admin\) not sent: .*sendmail exit 75: sendmail: queue full/);
});

function mailAction(over: Partial<MailAction> = {}): MailAction {
  return { kind: 'mail', name: 'admin', where: 't:1', queue: 10, timeoutMs: 1000, on: ['ban'], to: ['root'], from: '', sendmail: ['/bin/true'], digestMs: 60_000, report: { hour: 6, minute: 0 }, ...over };
}

test('the daily timer runs `tallow report --mail NAME` once a day for the day since the previous run', async () => {
  const clock = new FakeClock();
  clock.t = new Date(2026, 4, 4, 5, 0).getTime(); // local 05:00
  const runs: string[][] = [];
  const log = collector();
  const timer = new ReportTimer({ actionDefs: [mailAction(), mailAction({ name: 'quiet', report: null })], file: '/etc/tallow.conf', history: 'sqlite' }, log, clock, async (argv) => {
    runs.push(argv);
    return { ok: true, code: 0, signal: null, timedOut: false, error: null, stdout: '', stderr: '', ms: 1 };
  });
  timer.start();
  assert.match(log.lines.join('\n'), /daily report: action\.admin mails it to root next at /);
  clock.advance(59 * 60_000);
  assert.equal(runs.length, 0, 'not before 06:00');
  clock.advance(60_000);
  assert.equal(runs.length, 1);
  const argv = runs[0];
  const at = (opt: string) => argv[argv.indexOf(opt) + 1];
  assert.deepEqual(argv.slice(1, 5).map((a, i) => (i === 0 ? path.basename(a) : a)), ['cli.js', 'report', '--mail', 'admin']);
  assert.equal(Date.parse(at('--since')), new Date(2026, 4, 3, 6, 0).getTime());
  assert.equal(Date.parse(at('--until')), new Date(2026, 4, 4, 6, 0).getTime());
  assert.equal(at('--config'), '/etc/tallow.conf');
  assert.ok(fs.existsSync(argv[1]) || argv[1].endsWith(path.join('dist', 'src', 'cli.js')), argv[1]);
  clock.advance(23 * 3_600_000);
  assert.equal(runs.length, 1, 'once a day');
  clock.advance(3_600_000);
  assert.equal(runs.length, 2);
  assert.equal(Date.parse(runs[1][runs[1].indexOf('--since') + 1]), new Date(2026, 4, 4, 6, 0).getTime());
  timer.close();
  clock.advance(2 * 86_400_000);
  assert.equal(runs.length, 2, 'nothing after close');
});

test('the daily timer logs a report that could not be mailed, and tries again the next day; history=off mails none', async () => {
  const clock = new FakeClock();
  clock.t = new Date(2026, 4, 4, 7, 0).getTime();
  const log = collector();
  let n = 0;
  const timer = new ReportTimer({ actionDefs: [mailAction()], file: null, history: 'sqlite' }, log, clock, async () => {
    n++;
    return { ok: false, code: 1, signal: null, timedOut: false, error: null, stdout: '', stderr: 'tallow report: mail not sent: boom', ms: 1 };
  });
  timer.start();
  clock.advance(23 * 3_600_000);
  await new Promise((r) => setImmediate(r));
  assert.equal(n, 1);
  assert.match(log.errors.join('\n'), /daily report for action\.admin not mailed: tallow report exit 1/);
  clock.advance(86_400_000);
  assert.equal(n, 2);
  timer.close();

  const off = new ReportTimer({ actionDefs: [mailAction()], file: null, history: 'off' }, collector(), clock, async () => {
    throw new Error('must not run');
  });
  off.start();
  clock.advance(3 * 86_400_000);
  assert.deepEqual(off.actions(), []);
  off.close();
});
