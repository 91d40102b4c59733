// The HTML report in a real browser: Debian's chromium, headless, in a network namespace of its
// own (no route anywhere, names resolve to nothing), with Chromium's network log on. The page of
// a fixed day of history (test/unit/report-fixture.ts) must load without a single request of the
// page's own (a page with remote images, run the same way, shows that such requests are seen),
// and the figures in the rendered DOM (tables, and each bar of the charts) must equal those of
// the text report. The screenshot is left in the test's temporary directory for a person to look
// at; its path is printed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SqliteStore } from '../../src/history/sqlite';
import { buildReport } from '../../src/report';
import { fixtureRows, P, UNTIL } from '../unit/report-fixture';

const CHROMIUM = '/usr/bin/chromium';
const quiet = { info() {}, warn() {}, debug() {}, error() {} };

interface Run {
  dom: string;
  /** URLs the page itself asked for (Chromium's own background requests left out) */
  pageRequests: string[];
}

/** One headless run: the DOM after load, a screenshot, and what the network log saw. */
function chromium(dir: string, page: string, screenshot: string): Promise<Run> {
  const profile = fs.mkdtempSync(path.join(dir, 'profile-'));
  const netlog = path.join(dir, `netlog-${path.basename(page)}.json`);
  const args = [
    '--net', '--', CHROMIUM,
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-pings',
    '--no-first-run', `--user-data-dir=${profile}`, '--host-resolver-rules=MAP * ~NOTFOUND', `--log-net-log=${netlog}`,
    '--window-size=900,2400', '--hide-scrollbars', `--screenshot=${screenshot}`, '--dump-dom', `file://${page}`,
  ];
  return new Promise((resolve, reject) => {
    // Its own process group, so that a hang is ended with every process Chromium started.
    const child = spawn('unshare', args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let out = '';
    let err = '';
    child.stdout.on('data', (b) => (out += b));
    child.stderr.on('data', (b) => (err += b));
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }, 60_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      fs.rmSync(profile, { recursive: true, force: true });
      if (code !== 0) return reject(new Error(`chromium exited ${code ?? signal}: ${err.slice(-2000)}`));
      resolve({ dom: out, pageRequests: pageRequests(netlog) });
    });
  });
}

/** URL_REQUEST_START_JOB events started by the page (initiator or isolation key of the file), not by the browser. */
function pageRequests(netlog: string): string[] {
  const log = JSON.parse(fs.readFileSync(netlog, 'utf8')) as { constants: { logEventTypes: Record<string, number> }; events: { type: number; params?: Record<string, unknown> }[] };
  const start = log.constants.logEventTypes.URL_REQUEST_START_JOB;
  assert.ok(start !== undefined, 'the network log names URL_REQUEST_START_JOB');
  return log.events
    .filter((e) => e.type === start && typeof e.params?.url === 'string')
    .filter((e) => e.params!.initiator !== 'not an origin' || String(e.params!.network_isolation_key).includes('file://'))
    .map((e) => String(e.params!.url));
}

const unescape = (s: string): string =>
  s
    .replace(/<[^>]*>/g, '')
    .replace(/&#(\d+);/g, (_, n) => String.fromCharCode(Number(n)))
    .replace(/&nbsp;/g, ' ')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&amp;/g, '&')
    .trim();

/** A table's body rows, cell texts, from the serialized DOM. */
function domTable(dom: string, id: string): string[][] {
  const m = new RegExp(`<table id="${id}">([\\s\\S]*?)</table>`).exec(dom);
  assert.ok(m, `table #${id} in the DOM`);
  const body = /<tbody>([\s\S]*?)<\/tbody>/.exec(m![1])![1];
  return [...body.matchAll(/<tr>([\s\S]*?)<\/tr>/g)].map((r) => [...r[1].matchAll(/<td[^>]*>([\s\S]*?)<\/td>/g)].map((c) => unescape(c[1])));
}

/** A section of the text report: its rows (after the column heads), cells split on two or more spaces. */
function textTable(text: string, title: RegExp, rows: number): string[][] {
  const block = text.split('\n\n').find((b) => title.test(b.split('\n')[0]));
  assert.ok(block, `section ${title} in the text`);
  return block!.split('\n').slice(2, 2 + rows).map((l) => l.trim().split(/ {2,}/));
}

test('the HTML report in headless Chromium: no request of its own, the DOM\'s figures equal the text report\'s', { timeout: 180_000 }, async () => {
  assert.ok(fs.existsSync(CHROMIUM), `${CHROMIUM} is missing (Debian package chromium; scripts/deps.sh installs it)`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tallow-report-'));
  // The page and its screenshot stay for a person to look at when the test fails, or when asked
  // (TALLOW_KEEP_REPORT=1); otherwise the directory goes like every test's.
  const keep = new Set(['report.html', 'report.png']);
  let passed = false;
  try {
    const file = path.join(dir, 'history.sqlite');
    const writer = new SqliteStore(file, quiet);
    await writer.write('r', fixtureRows());
    await writer.close();
    const store = new SqliteStore(file, quiet, true);
    const r = await buildReport(store, P, UNTIL, { host: 'gate.example', now: UNTIL });
    await store.close();
    const page = path.join(dir, 'report.html');
    fs.writeFileSync(page, r.html);

    // Nothing in the file names anything to fetch.
    for (const bad of [/https?:/i, /<[^>]*\s(?:src|href|srcset|background|xlink:href)=/i, /url\(/i, /@import/i, /<script/i, /<link/i]) assert.doesNotMatch(r.html, bad);

    // A page with remote images, run the same way: its requests are seen (the check can fail).
    const control = path.join(dir, 'control.html');
    fs.writeFileSync(control, '<!DOCTYPE html><p>x</p><img src="http://192.0.2.1/x.png"><img src="https://example.invalid/y.png">');
    const seen = await chromium(dir, control, path.join(dir, 'control.png'));
    assert.deepEqual(seen.pageRequests.sort(), ['http://192.0.2.1/x.png', 'https://example.invalid/y.png']);

    const shot = path.join(dir, 'report.png');
    const run = await chromium(dir, page, shot);
    assert.deepEqual(run.pageRequests, [], 'the report asked for nothing');
    assert.ok(fs.statSync(shot).size > 10_000, 'a screenshot was written');

    const dom = run.dom;
    assert.match(dom, /<h1>tallow report for gate\.example<\/h1>/);
    const sections: [string, RegExp][] = [
      ['summary', /^Summary$/],
      ['rules', /^Bans per rule$/],
      ['addresses', /^Top addresses$/],
      ['networks', /^Top networks$/],
      ['patterns', /^Top patterns$/],
      ['repeat', /^Repeat offenders/],
    ];
    for (const [id, title] of sections) {
      const inDom = domTable(dom, id);
      assert.ok(inDom.length > 0, `rows in #${id}`);
      const inText = textTable(r.text, title, inDom.length);
      // The summary's text rows start with their label; so do the DOM's.
      assert.deepEqual(inDom, inText, `#${id}: DOM vs text`);
    }
    // The hour chart: one bar per bucket, its figure in data-bans and in its tooltip, as the text's lines.
    const bars = [...dom.matchAll(/<rect class="bucket" data-start="(\d+)" data-bans="(\d+)"[^>]*><title>([^<]*)<\/title><\/rect>/g)];
    const hours = r.text.slice(r.text.indexOf('Bans per hour (UTC)\n') + 20).trim().split('\n').map((l) => /^(\d\d-\d\d \d\d:\d\d) +(\d+)/.exec(l)!);
    assert.equal(bars.length, 24);
    assert.deepEqual(bars.map((b) => [b[3], Number(b[2])]), hours.map((h) => [`${h[1]} UTC: ${h[2]} ${h[2] === '1' ? 'ban' : 'bans'}`, Number(h[2])]));
    // The rules chart: a bar per rule with bans, as the rules table.
    const ruleBars = [...dom.matchAll(/<rect class="rule" data-bans="(\d+)"[^>]*><title>([^:<]*):/g)].map((b) => [b[2], b[1]]);
    assert.deepEqual(ruleBars, domTable(dom, 'rules').map((row) => [row[0], row[1]]));
    passed = true;
  } finally {
    if (passed && !process.env.TALLOW_KEEP_REPORT) fs.rmSync(dir, { recursive: true, force: true });
    else {
      for (const f of fs.readdirSync(dir)) if (!keep.has(f)) fs.rmSync(path.join(dir, f), { recursive: true, force: true });
      console.log(`# the report page and its screenshot, for a person to look at: ${dir}`);
    }
  }
});
