// Shared by the action tests: a ledger feeding a dispatcher, quiet loggers, temporary
// directories, programs written by the test.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import assert from 'node:assert/strict';
import type { Clock } from '../../src/actions/mail';
import { Dispatcher, type Listener } from '../../src/events';
import { Ledger, type BanRequest } from '../../src/ledger';
import type { Logger } from '../../src/log';

export type Collector = Logger & { errors: string[]; lines: string[] };

export function collector(): Collector {
  const errors: string[] = [];
  const lines: string[] = [];
  const put = (level: string) => (m: string, f?: Record<string, string>) => void lines.push(`${level} ${m} ${f ? JSON.stringify(f) : ''}`);
  return {
    errors,
    lines,
    info: put('info'),
    warn: put('warn'),
    debug() {},
    error: (m, f) => {
      errors.push(`${m} ${f ? JSON.stringify(f) : ''}`);
      put('error')(m, f);
    },
  };
}

export function tempDir(t: { after(fn: () => void): void }, name: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `tallow-${name}-`));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** An executable file of the test's own, for the code under test to run. */
export function program(dir: string, name: string, text: string): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, text, { mode: 0o755 });
  return p;
}

export function wire(listeners: Listener[], log: Logger = collector()): { ledger: Ledger; events: Dispatcher } {
  let events!: Dispatcher;
  const ledger = new Ledger({ emit: (e) => events.emit(e) });
  events = new Dispatcher(listeners, log, { retryBaseMs: 20, retryMaxMs: 100 });
  return { ledger, events };
}

export function ban(address: string, over: Partial<BanRequest> = {}): BanRequest {
  return { address, family: address.includes(':') ? 6 : 4, seconds: 3600, origin: 'rule', reason: 'threshold', pattern: 'sshd.json#2', score: 1, count: 5, ...over };
}

/** 1..n as documentation addresses: 198.51.100.x / 203.0.113.x first, then 2001:db8::x. */
export function addresses(n: number): string[] {
  return Array.from({ length: n }, (_, i) => (i < 250 ? `203.0.113.${i + 1}` : `2001:db8::${(i + 1).toString(16)}`));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function waitFor(what: string, probe: () => boolean, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

// ---- mail: the test's own reader of a stored message, and a clock the test moves ----

/** RFC 2047 B encoded-words back to text (the test's own reader). */
export function decodeWords(v: string): string {
  return v.replace(/=\?UTF-8\?B\?([A-Za-z0-9+/=]*)\?=(?:\s+(?==\?))?/gi, (_m, b64: string) => Buffer.from(b64, 'base64').toString('utf8'));
}

export interface Parsed {
  headers: Map<string, string>;
  text: string;
  html: string;
  partTypes: string[];
}

export function parseMail(raw: string): Parsed {
  assert.ok(!raw.includes('\r'), 'LF line ends for sendmail');
  const split = raw.indexOf('\n\n');
  const head = raw.slice(0, split);
  const headers = new Map<string, string>();
  for (const line of head.replace(/\n[ \t]+/g, ' ').split('\n')) {
    const m = /^([A-Za-z-]+): (.*)$/.exec(line);
    assert.ok(m, `header line ${JSON.stringify(line)}`);
    assert.ok(!headers.has(m![1].toLowerCase()), `header ${m![1]} twice`);
    headers.set(m![1].toLowerCase(), m![2]);
  }
  for (const l of raw.split('\n')) assert.ok(Buffer.byteLength(l) <= 998, 'no line over 998 bytes');
  assert.ok(/^[\x00-\x7f]*$/.test(raw), 'the message itself is 7-bit');
  const ct = headers.get('content-type') ?? '';
  const b = /^multipart\/alternative; boundary="([^"]+)"$/.exec(ct);
  assert.ok(b, ct);
  const parts = raw.slice(split + 2).split(`--${b![1]}`);
  assert.equal(parts[parts.length - 1].trim(), '--', 'closing delimiter');
  const body = parts.slice(1, -1).map((p) => {
    const [ph, ...rest] = p.replace(/^\n/, '').split('\n\n');
    const h = Object.fromEntries(ph.split('\n').map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 2)]));
    assert.equal(h['content-transfer-encoding'], 'base64');
    const b64 = rest.join('\n\n').trim();
    assert.ok(b64.split('\n').every((l) => l.length <= 76 && /^[A-Za-z0-9+/=]*$/.test(l)));
    return { type: h['content-type'], content: Buffer.from(b64.replace(/\n/g, ''), 'base64').toString('utf8') };
  });
  assert.deepEqual(body.map((p) => p.type), ['text/plain; charset=utf-8', 'text/html; charset=utf-8']);
  return { headers, text: body[0].content, html: body[1].content, partTypes: body.map((p) => p.type) };
}

export class FakeClock implements Clock {
  t = Date.parse('2026-05-04T10:00:00Z');
  private timers: { at: number; fn: () => void; id: number }[] = [];
  private ids = 0;
  now() {
    return this.t;
  }
  setTimeout(fn: () => void, ms: number) {
    const id = ++this.ids;
    this.timers.push({ at: this.t + ms, fn, id });
    return id;
  }
  clearTimeout(id: unknown) {
    this.timers = this.timers.filter((x) => x.id !== id);
  }
  advance(ms: number) {
    this.t += ms;
    const due = this.timers.filter((x) => x.at <= this.t);
    this.timers = this.timers.filter((x) => x.at > this.t);
    for (const x of due) x.fn();
  }
}

