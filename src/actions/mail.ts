// A mail action as a listener: bans (and unbans, with on=ban,unban) mailed through sendmail(8)
// (`sendmail -t -oi`) or SMTP (smtp=, transport.ts), never one mail per ban in a flood: at most one mail per `digest`
// interval. The first ban after a quiet interval goes out at once; what comes in the interval
// after a mail waits and goes out in one digest at its end, listing every ban in between.
// handle() only collects: a slow or failing sendmail holds back nothing. A mail that cannot be
// sent is logged and tried again (after 1, 2, 4... minutes, never later than `digest`) with
// what came meanwhile; at stop, what waits goes out at once.
//
// Logins (notify rules, with on=...notify, the default) are not held by the digest: each goes out
// at once in a mail of its own (`login: USER from ADDRESS on HOST`). Their only limit is one mail
// at a time: logins that come while one is being sent go out together in the next, right after.
// A failed login mail is tried again like a digest (1, 2, 4... minutes), with later logins.
import * as os from 'node:os';
import type { Listener, TallowEvent } from '../events';
import type { Logger } from '../log';
import { buildMessage, htmlEscape, type MailPart } from './message';
import type { MailAction } from './settings';
import { mailTransport, type MailTransport } from './transport';
import { actionable, valuesOf, type ActionEventKind } from './values';
import type { Values } from './argv';

/** Most events listed in one mail; the rest of a huge flood are counted in it (and the next). */
export const LIST_MAX = 10_000;
const RETRY_FIRST_MS = 60_000;

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(t: unknown): void;
}

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref();
    return t;
  },
  clearTimeout: (t) => clearTimeout(t as NodeJS.Timeout),
};

/**
 * One stream of mails (the ban digests, or the login alerts): one mail at a time, none before
 * `nextAt`, and after a failure the next try in 1, 2, 4... minutes (never later than the cap).
 */
class MailLane {
  /** no mail before this time (ms) */
  private nextAt = -Infinity;
  private streak = 0;
  private timer: unknown = null;
  sending: Promise<void> | null = null;

  constructor(
    private readonly clock: Clock,
    /** whether to send now: something waits and the listener is open */
    private readonly due: () => boolean,
    private readonly send: () => Promise<void>,
  ) {}

  pump(): void {
    if (this.sending || this.timer !== null || !this.due()) return;
    const wait = this.nextAt - this.clock.now();
    if (wait > 0) {
      this.timer = this.clock.setTimeout(() => {
        this.timer = null;
        this.pump();
      }, wait);
      return;
    }
    this.sending = this.send().finally(() => {
      this.sending = null;
      this.pump();
    });
  }

  /** Sent: the next one not before `gapMs` from now. */
  sent(now: number, gapMs: number): void {
    this.streak = 0;
    this.nextAt = now + gapMs;
  }

  /** Not sent: the delay until the next try. */
  failed(now: number, capMs: number): number {
    const delay = Math.min(capMs, RETRY_FIRST_MS * 2 ** this.streak++);
    this.nextAt = now + delay;
    return delay;
  }

  stop(): void {
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    this.timer = null;
  }
}

export interface MailItem extends Values {
  /** ms since epoch of the ban or unban */
  at: number;
}

export interface MailStats {
  mails: number;
  failures: number;
  listed: number;
  /** events past `queue` while mails could not go out: counted, not listed */
  dropped: number;
}

export class MailListener implements Listener {
  readonly name: string;
  readonly maxBatch = Infinity;
  readonly stats: MailStats = { mails: 0, failures: 0, listed: 0, dropped: 0 };
  private readonly on: Set<ActionEventKind>;
  private readonly node = os.hostname();
  private pending: MailItem[] = [];
  private droppedSince = 0;
  private closed = false;
  private logins: MailItem[] = [];
  private readonly digests: MailLane;
  private readonly alerts: MailLane;

  constructor(
    readonly action: MailAction,
    private readonly log: Logger,
    private readonly clock: Clock = realClock,
    /** sendmail, or SMTP with smtp= (transport.ts; throws on an unreadable password file) */
    private readonly transport: MailTransport = mailTransport(action),
  ) {
    this.name = `action.${action.name}`;
    this.on = new Set(action.on);
    this.digests = new MailLane(clock, () => !this.closed && this.pending.length > 0, () => this.send());
    this.alerts = new MailLane(clock, () => !this.closed && this.logins.length > 0, () => this.sendLogins());
  }

  handle(events: TallowEvent[]): void {
    for (const e of events) {
      if (!actionable(e, this.on)) continue;
      if (e.kind === 'notify') {
        if (this.logins.length >= this.action.queue) this.stats.dropped++;
        else this.logins.push({ ...valuesOf(e), at: e.at });
        continue;
      }
      if (this.pending.length >= this.action.queue) {
        this.stats.dropped++;
        this.droppedSince++;
        continue;
      }
      this.pending.push({ ...valuesOf(e), at: e.kind === 'ban' ? e.ban.since : e.at });
    }
    this.digests.pump();
    this.alerts.pump();
  }

  /** Resolves when a mail being sent is out (a digest waiting for its time is not hurried). */
  async flush(): Promise<void> {
    await this.digests.sending;
    await this.alerts.sending;
  }

  /** What waits goes out now. */
  async close(): Promise<void> {
    this.closed = true;
    this.digests.stop();
    this.alerts.stop();
    await this.digests.sending;
    await this.alerts.sending;
    if (this.pending.length) await this.send();
    if (this.logins.length) await this.sendLogins();
    this.transport.close();
  }

  private async sendLogins(): Promise<void> {
    const items = this.logins.splice(0, LIST_MAX);
    const now = this.clock.now();
    const a = this.action;
    const from = a.from || `root@${this.node}`;
    const message = buildMessage({ from, to: a.to, subject: loginSubject(this.node, items), node: this.node, date: new Date(now) }, loginBody(this.node, items));
    const why = await this.transport.send(message, { from, to: a.to });
    if (why === null) {
      this.stats.mails++;
      this.stats.listed += items.length;
      this.alerts.sent(now, 0);
      return;
    }
    this.logins.unshift(...items);
    this.stats.failures++;
    const delay = this.alerts.failed(now, a.digestMs);
    this.log.error(`${this.name}: ${why}; ${items.length} login alerts wait, next try in ${Math.round(delay / 1000)} s`);
  }

  private async send(): Promise<void> {
    const items = this.pending.splice(0, LIST_MAX);
    const dropped = this.droppedSince;
    this.droppedSince = 0;
    const now = this.clock.now();
    const a = this.action;
    const from = a.from || `root@${this.node}`;
    const message = buildMessage({ from, to: a.to, subject: subjectOf(this.node, items, this.pending.length + dropped), node: this.node, date: new Date(now) }, digestBody(this.node, items, this.pending.length, dropped));
    const why = await this.transport.send(message, { from, to: a.to });
    if (why === null) {
      this.stats.mails++;
      this.stats.listed += items.length;
      this.digests.sent(now, a.digestMs);
      return;
    }
    // Back in front, to go out with what came meanwhile.
    this.pending.unshift(...items);
    this.droppedSince += dropped;
    this.stats.failures++;
    const delay = this.digests.failed(now, a.digestMs);
    this.log.error(`${this.name}: ${why}; ${items.length} events wait, next try in ${Math.round(delay / 1000)} s`);
  }
}

function plural(n: number, one: string): string {
  return `${n} ${one}${n === 1 ? '' : 's'}`;
}

function counts(items: MailItem[]): { bans: number; unbans: number } {
  let bans = 0;
  for (const i of items) if (i.event === 'ban') bans++;
  return { bans, unbans: items.length - bans };
}

export function subjectOf(node: string, items: MailItem[], more: number): string {
  const { bans, unbans } = counts(items);
  const parts = [bans ? plural(bans, 'ban') : '', unbans ? plural(unbans, 'unban') : ''].filter(Boolean).join(', ');
  const first = items.length === 1 ? `: ${items[0].address}${items[0].rule ? ` (${items[0].rule})` : ''}` : '';
  return `tallow on ${node}: ${parts}${first}${more ? ` (${more} more follow)` : ''}`;
}

function localTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

const COLUMNS = ['time', 'event', 'address', 'seconds', 'rule', 'pattern', 'reason', 'score', 'count'] as const;

function cells(i: MailItem): string[] {
  return [localTime(i.at), i.event, i.address, i.event === 'ban' ? i.seconds : '', i.rule, i.pattern, i.reason, i.event === 'ban' ? i.score : '', i.event === 'ban' ? i.count : ''];
}

/** The text part reads well in a terminal; the HTML part is the same table, every value escaped. */
export function digestBody(node: string, items: MailItem[], more: number, dropped: number): MailPart {
  const { bans, unbans } = counts(items);
  const span = items.length ? `${localTime(items[0].at)} to ${localTime(items[items.length - 1].at)}` : '';
  const intro = `tallow on ${node}: ${[bans ? plural(bans, 'ban') : '', unbans ? plural(unbans, 'unban') : ''].filter(Boolean).join(' and ')}, ${span}.`;
  const notes: string[] = [];
  if (more) notes.push(`${plural(more, 'more event')} follow in the next mail.`);
  if (dropped) notes.push(`${plural(dropped, 'event')} could not be kept while mail could not be sent (queue full): not listed.`);
  const rows = items.map(cells);
  const widths = COLUMNS.map((c, k) => Math.max(c.length, ...rows.map((r) => r[k].length)));
  const line = (r: readonly string[]) => r.map((s, k) => s.padEnd(widths[k])).join('  ').trimEnd();
  const text = [intro, ...notes, '', line(COLUMNS), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line), ''].join('\n');
  const td = (s: string) => `<td style="padding:2px 8px;border-bottom:1px solid #ddd">${htmlEscape(s)}</td>`;
  const html = [
    '<!DOCTYPE html>',
    '<html><head><meta charset="utf-8"><title>tallow</title></head>',
    '<body style="font-family:sans-serif;font-size:14px">',
    `<p>${htmlEscape(intro)}</p>`,
    ...notes.map((n) => `<p>${htmlEscape(n)}</p>`),
    '<table style="border-collapse:collapse">',
    `<tr>${COLUMNS.map((c) => `<th style="text-align:left;padding:2px 8px">${htmlEscape(c)}</th>`).join('')}</tr>`,
    ...rows.map((r) => `<tr>${r.map(td).join('')}</tr>`),
    '</table>',
    '</body></html>',
    '',
  ].join('\n');
  return { text, html };
}

/** Control characters (a crafted user name) as `?` in a subject line. */
const printable = (s: string) => s.replace(/[\x00-\x1f\x7f]/g, '?');

function whoFrom(i: MailItem): string {
  return i.user ? `${printable(i.user)} from ${i.address}` : `${i.rule} from ${i.address}`;
}

/** `login: alice from 203.0.113.7 on HOST`; several: `... (and 2 more logins)`. */
export function loginSubject(node: string, items: MailItem[]): string {
  const more = items.length > 1 ? ` (and ${plural(items.length - 1, 'more login')})` : '';
  return `login: ${whoFrom(items[0])} on ${node}${more}`;
}

const LOGIN_COLUMNS = ['time', 'user', 'address', 'method', 'fingerprint', 'rule'] as const;

/** One line per login: who, from where, how (the key's fingerprint), which rule saw it. */
export function loginBody(node: string, items: MailItem[]): MailPart {
  const intro = `tallow on ${node}: ${items.length === 1 ? 'a login' : plural(items.length, 'login')} seen by notify rules.`;
  const rows = items.map((i) => [localTime(i.at), printable(i.user), i.address, i.method, i.fingerprint, i.rule]);
  const widths = LOGIN_COLUMNS.map((c, k) => Math.max(c.length, ...rows.map((r) => r[k].length)));
  const line = (r: readonly string[]) => r.map((s, k) => s.padEnd(widths[k])).join('  ').trimEnd();
  const text = [intro, '', line(LOGIN_COLUMNS), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line), ''].join('\n');
  const td = (s: string) => `<td style="padding:2px 8px;border-bottom:1px solid #ddd">${htmlEscape(s)}</td>`;
  const html = [
    '<!DOCTYPE html>',
    '<html><head><meta charset="utf-8"><title>tallow</title></head>',
    '<body style="font-family:sans-serif;font-size:14px">',
    `<p>${htmlEscape(intro)}</p>`,
    '<table style="border-collapse:collapse">',
    `<tr>${LOGIN_COLUMNS.map((c) => `<th style="text-align:left;padding:2px 8px">${htmlEscape(c)}</th>`).join('')}</tr>`,
    ...rows.map((r) => `<tr>${r.map(td).join('')}</tr>`),
    '</table>',
    '</body></html>',
    '',
  ].join('\n');
  return { text, html };
}
