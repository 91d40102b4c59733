// A webhook action as a listener: bans and unbans POSTed as JSON, many events per request under a
// flood (up to `batch`), a moment after the decision and never in its path. A request that fails
// (no answer within the timeout, a refused connection, a status other than 2xx) throws: the
// dispatcher keeps the same events at the head of this listener's queue and tries again after
// 1, 2, 4... s (up to a minute), so nothing is lost (up to `queue` events held) and the order
// stays as the bans were made. A receiver may see a batch twice (it answered, the answer was
// lost): each event carries an id that stays the same on every try.
//
// Schema, version 1 (tallow.conf(5), WEBHOOKS):
//   {"version":1,"node":"HOST","sent":"ISO time","events":[{"id","type":"ban"|"unban","time",
//    "address","family","network","rule","pattern","score","count","reason","seconds",
//    "expires" (ban),"origin"}...]}
//   A notify rule's login (with on=...,notify, the default), in the same list, in the order seen:
//   {"id","type":"notify","time","address","family","network","rule","pattern","user","method",
//    "fingerprint"} (user/method/fingerprint "" when the rule's pattern has no such group).
// Headers: Content-Type: application/json; Authorization: Bearer TOKEN (bearer_file);
// X-Tallow-Signature: sha256=HEX, HMAC-SHA256 of the exact body with the key in secret_file.
import { createHmac, randomBytes } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import * as os from 'node:os';
import type { Listener, TallowEvent } from '../events';
import { errText } from '../limits';
import type { Logger } from '../log';
import type { WebhookAction } from './settings';
import { actionable, networkOf, notifyValues, ruleOf, valuesOf, type ActionEvent, type ActionEventKind } from './values';

export const SCHEMA_VERSION = 1;
export const SIGNATURE_HEADER = 'X-Tallow-Signature';
/** Bytes of a failed answer's body kept for the log line. */
const ANSWER_KEPT = 300;
/** Lines of a chat message; the rest are counted. */
const CHAT_LINES = 20;

export interface WebhookEvent {
  id: string;
  type: 'ban' | 'unban';
  time: string;
  address: string;
  family: 4 | 6;
  network: string;
  rule: string;
  pattern: string;
  score: number;
  count: number;
  reason: string;
  seconds: number;
  expires?: string;
  origin: string;
}

/** A login a notify rule reported. */
export interface WebhookNotify {
  id: string;
  type: 'notify';
  time: string;
  address: string;
  family: 4 | 6;
  network: string;
  rule: string;
  pattern: string;
  user: string;
  method: string;
  fingerprint: string;
}

export type WebhookItem = WebhookEvent | WebhookNotify;

export interface WebhookStats {
  requests: number;
  failures: number;
  eventsSent: number;
  largestBatch: number;
}

export interface WebhookSecrets {
  bearer: string;
  secret: string;
  ca: string;
}

export { readSecret } from './secret';

/** The signature a receiver recomputes over the body it got: `sha256=` and 64 hex digits. */
export function signature(secret: string, body: string | Buffer): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

export class WebhookListener implements Listener {
  readonly name: string;
  readonly maxQueue: number;
  readonly maxBatch: number;
  readonly stats: WebhookStats = { requests: 0, failures: 0, eventsSent: 0, largestBatch: 0 };
  private readonly on: Set<ActionEventKind>;
  private readonly url: URL;
  private readonly agent: http.Agent;
  private readonly node = os.hostname();
  private readonly run = randomBytes(4).toString('hex');
  private seq = 0;
  /** Each event keeps its id and time on every try. */
  private readonly json = new WeakMap<TallowEvent, WebhookItem>();
  private failing = false;

  constructor(
    readonly action: WebhookAction,
    private readonly secrets: WebhookSecrets,
    private readonly log: Logger,
  ) {
    this.name = `action.${action.name}`;
    this.maxQueue = action.queue;
    this.maxBatch = action.batch;
    this.on = new Set(action.on);
    this.url = new URL(action.url);
    const opts = { keepAlive: true, maxSockets: 1, ...(secrets.ca ? { ca: secrets.ca } : {}) };
    this.agent = this.url.protocol === 'https:' ? new https.Agent(opts) : new http.Agent(opts);
  }

  async handle(events: TallowEvent[]): Promise<void> {
    const list: WebhookItem[] = [];
    for (const e of events) {
      if (!actionable(e, this.on)) continue;
      let j = this.json.get(e);
      if (!j) this.json.set(e, (j = this.toJson(e)));
      list.push(j);
    }
    if (list.length === 0) return;
    const body = this.action.format === 'slack' ? JSON.stringify({ text: chatText(this.node, list) }) : JSON.stringify({ version: SCHEMA_VERSION, node: this.node, sent: new Date().toISOString(), events: list });
    this.stats.requests++;
    try {
      await this.post(body);
    } catch (e) {
      this.stats.failures++;
      this.failing = true;
      throw e;
    }
    if (this.failing) this.log.info(`${this.name}: ${this.url.host} answers again`);
    this.failing = false;
    this.stats.eventsSent += list.length;
    this.stats.largestBatch = Math.max(this.stats.largestBatch, list.length);
  }

  async close(): Promise<void> {
    this.agent.destroy();
  }

  private toJson(e: ActionEvent): WebhookItem {
    if (e.kind === 'notify') {
      const v = notifyValues(e);
      return { id: `${this.run}-${++this.seq}`, type: 'notify', time: new Date(e.at).toISOString(), address: e.address, family: e.family, network: v.network, rule: e.rule, pattern: e.pattern, user: e.user, method: e.method, fingerprint: e.fingerprint };
    }
    const b = e.ban;
    const v = valuesOf(e);
    const j: WebhookEvent = {
      id: `${this.run}-${++this.seq}`,
      type: e.kind,
      time: new Date(e.kind === 'ban' ? b.since : e.at).toISOString(),
      address: b.address,
      family: b.family,
      network: networkOf(b),
      rule: ruleOf(b),
      pattern: b.pattern ?? '',
      score: b.score,
      count: b.count,
      reason: v.reason,
      seconds: Number(v.seconds),
      origin: b.origin,
    };
    if (e.kind === 'ban') j.expires = new Date(b.expiry).toISOString();
    return j;
  }

  private post(body: string): Promise<void> {
    const headers: Record<string, string | number> = {
      'Content-Type': 'application/json',
      'Content-Length': Buffer.byteLength(body),
      'User-Agent': 'tallow',
    };
    if (this.secrets.bearer) headers.Authorization = `Bearer ${this.secrets.bearer}`;
    if (this.secrets.secret) headers[SIGNATURE_HEADER] = signature(this.secrets.secret, body);
    const mod = this.url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = mod.request(this.url, { method: 'POST', headers, agent: this.agent }, (res) => {
        const status = res.statusCode ?? 0;
        let answer = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          if (answer.length < ANSWER_KEPT) answer += d.slice(0, ANSWER_KEPT - answer.length);
        });
        res.on('end', () => {
          clearTimeout(timer);
          if (status >= 200 && status < 300) resolve();
          else reject(new Error(`${this.url.host} answered ${status}${answer.trim() ? `: ${answer.trim().replace(/\s+/g, ' ')}` : ''}`));
        });
        res.on('error', (e) => reject(e));
      });
      // One deadline for the whole request, answer included.
      const timer = setTimeout(() => req.destroy(new Error(`no answer from ${this.url.host} within ${this.action.timeoutMs / 1000} s`)), this.action.timeoutMs);
      req.on('error', (e) => {
        clearTimeout(timer);
        reject(new Error(`${this.url.host}: ${(e as NodeJS.ErrnoException).code ?? ''} ${errText(e)}`.replace(/\s+/g, ' ')));
      });
      req.end(body);
    });
  }
}

/** Slack's `&`, `<`, `>`: what an event says can never become a link or a mention. */
function chatEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** For chat webhooks (Slack, Mattermost, Rocket.Chat, Discord's /slack): one line per event. */
export function chatText(node: string, list: WebhookItem[]): string {
  const lines = list.slice(0, CHAT_LINES).map((e) => {
    if (e.type === 'notify') return `login: ${e.user ? `${e.user} from ` : ''}${e.address}${e.method ? ` (${e.method}${e.fingerprint ? ` ${e.fingerprint}` : ''})` : ''}, rule ${e.rule}`;
    const what = [e.rule && `rule ${e.rule}`, e.pattern, e.type === 'ban' ? `score ${e.score}, ${e.count} matches` : ''].filter(Boolean).join(', ');
    return e.type === 'ban' ? `banned ${e.address} for ${e.seconds} s (${e.reason}${what ? `; ${what}` : ''})` : `unbanned ${e.address} (${e.reason})`;
  });
  if (list.length > CHAT_LINES) lines.push(`and ${list.length - CHAT_LINES} more`);
  return chatEscape(`tallow on ${node}:\n${lines.join('\n')}`);
}
