// tallow.conf keys of actions (issue 16): named actions, each a command, a webhook or a mail,
//   action.NAME.KEY=VALUE   e.g. action.ufw.ban_command=/usr/sbin/ufw insert 1 deny from {address}
//   actions=NAME,NAME       which of them run for every rule (default: all defined; none: none)
// A name lets a rule later pick its own actions from the same list. An action's kind follows from
// its main key (ban_command/unban_command, url, mail_to). Keys are collected while the file is
// read and checked at its end, each error naming the line of the key at fault.
import { isAbsolute } from 'node:path';
import { parseDuration } from '../history/settings';
import { parseCommand } from './argv';
import { parseDailyTime, type DailyTime } from '../report/schedule';
import type { ActionEventKind } from './values';

export type ActionKind = 'command' | 'webhook' | 'mail';

interface Common {
  name: string;
  /** `tallow.conf:12` (its first key), for messages */
  where: string;
  /** events held for it while it is slow or failing; past this they are dropped and counted */
  queue: number;
  timeoutMs: number;
}

export interface CommandAction extends Common {
  kind: 'command';
  /** argv templates (placeholders unexpanded); null: nothing runs on that event */
  ban: string[] | null;
  unban: string[] | null;
  /** run once per login a notify rule reports (one run each, whatever `batch` says) */
  notify?: string[] | null;
  /** most runs at once (one address per run) */
  concurrency: number;
  /** 0: one run per address; N: one run for up to N addresses on standard input */
  batch: number;
  /** also run on bans restored from the state file at start */
  restored: boolean;
}

export interface WebhookAction extends Common {
  kind: 'webhook';
  url: string;
  on: ActionEventKind[];
  bearerFile: string;
  secretFile: string;
  caFile: string;
  /** most events per request */
  batch: number;
  format: 'tallow' | 'slack';
}

export interface MailAction extends Common {
  kind: 'mail';
  on: ActionEventKind[];
  to: string[];
  /** '' : root@ this host's name */
  from: string;
  sendmail: string[];
  digestMs: number;
  /** the daily report's local time (`report=06:00`, the default), or null (`report=off`) */
  report: DailyTime | null;
  // Optional (absent: sendmail), so that a MailAction written by hand needs none of them.
  /** `smtp=`: sent by SMTP (nodemailer) instead of sendmail; null: sendmail */
  smtp?: SmtpServer | null;
  /** SMTP without implicit TLS: STARTTLS required (the default), used when offered, or never */
  starttls?: 'required' | 'opportunistic' | 'off';
  /** SMTP AUTH user ('' : none) and the root-only file holding its password */
  user?: string;
  passwordFile?: string;
  /** CA certificates the SMTP server's certificate is checked against ('' : the system's) */
  caFile?: string;
}

export interface SmtpServer {
  host: string;
  port: number;
  /** smtps://: TLS from the first byte (port 465) */
  tls: boolean;
  /** `smtp://host:587`, for messages */
  url: string;
}

/** `host:port`, `[v6]:port`, `smtp://host[:port]` (587), `smtps://host[:port]` (465). */
export function parseSmtp(v: string): SmtpServer | string {
  const m = /^(?:(smtps?):\/\/)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::(\d{1,5}))?\/?$/.exec(v);
  const port = m?.[3] !== undefined ? Number(m[3]) : m?.[1] === 'smtps' ? 465 : m?.[1] === 'smtp' ? 587 : NaN;
  if (!m || !(port >= 1 && port <= 65535)) return `expected host:port, smtp://host[:port] (STARTTLS, port 587) or smtps://host[:port] (TLS, port 465), got '${v}'`;
  const tls = m[1] === 'smtps';
  return { host: m[2].replace(/^\[|\]$/g, ''), port, tls, url: `${tls ? 'smtps' : 'smtp'}://${m[2]}:${port}` };
}

export type ActionConfig = CommandAction | WebhookAction | MailAction;

/** Optional in Config: a Config built by hand (tests) without them has no actions. */
export interface ActionSettings {
  /** Every action defined, in the order of their first key. */
  actionDefs?: ActionConfig[];
  /** `actions=`: the names that run for every rule; null or absent: all defined. */
  actions?: string[] | null;
}

export function defaultActionSettings(): ActionSettings {
  return { actionDefs: [], actions: null };
}

/** Read once at start; a reload that changes them says a restart is needed. */
export const ACTION_RESTART_KEYS = ['actionDefs', 'actions'] as const;

const NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;
const MAILBOX = /^[A-Za-z0-9._%+=-]{1,64}(?:@[A-Za-z0-9.-]{1,253})?$/;

type Apply<A> = (a: A, v: string) => string | null;
type Spec = Partial<{ command: Apply<CommandAction>; webhook: Apply<WebhookAction>; mail: Apply<MailAction> }>;

function whole(min: number, max: number, set: (a: any, n: number) => void): Apply<any> {
  return (a, v) => {
    if (!/^\d{1,10}$/.test(v) || Number(v) < min || Number(v) > max) return `expected a whole number from ${min} to ${max}, got '${v}'`;
    set(a, Number(v));
    return null;
  };
}

function duration(max: number, set: (a: any, ms: number) => void): Apply<any> {
  return (a, v) => {
    const s = parseDuration(v);
    if (s === null || s > max) return `expected a duration (seconds, or like 30s, 15m, 1h) up to ${max} s, got '${v}'`;
    set(a, s * 1000);
    return null;
  };
}

function file(set: (a: any, p: string) => void): Apply<any> {
  return (a, v) => {
    if (!isAbsolute(v)) return `expected an absolute path, got '${v}'`;
    set(a, v);
    return null;
  };
}

const on: Apply<WebhookAction | MailAction> = (a, v) => {
  const parts = v.split(',').map((s) => s.trim());
  if (parts.some((p) => p !== 'ban' && p !== 'unban' && p !== 'notify') || new Set(parts).size !== parts.length) return `expected ban, unban or ban,unban (and notify: notify rules' logins), got '${v}'`;
  a.on = parts as ActionEventKind[];
  return null;
};

// Commands are parsed last (build()): whether {address} may appear depends on batch=.
const keep: Apply<CommandAction> = () => null;

const KEYS: Record<string, Spec> = {
  ban_command: { command: keep },
  unban_command: { command: keep },
  notify_command: { command: keep },
  concurrency: { command: whole(1, 64, (a, n) => (a.concurrency = n)) },
  batch: {
    command: whole(0, 100_000, (a, n) => (a.batch = n)),
    webhook: whole(1, 10_000, (a, n) => (a.batch = n)),
  },
  restored: {
    command: (a, v) => {
      if (!/^(?:0|1|yes|no|true|false|on|off)$/i.test(v)) return `expected 0 or 1, got '${v}'`;
      a.restored = /^(?:1|yes|true|on)$/i.test(v);
      return null;
    },
  },
  url: {
    webhook: (a, v) => {
      let u: URL;
      try {
        u = new URL(v);
      } catch {
        return `expected an http:// or https:// URL, got '${v}'`;
      }
      if (u.protocol !== 'http:' && u.protocol !== 'https:') return `expected an http:// or https:// URL, got '${v}'`;
      if (u.username || u.password) return 'no user or password in the URL: this file is readable; use bearer_file';
      a.url = u.href;
      return null;
    },
  },
  on: { webhook: on, mail: on },
  bearer_file: { webhook: file((a, p) => (a.bearerFile = p)) },
  secret_file: { webhook: file((a, p) => (a.secretFile = p)) },
  ca_file: { webhook: file((a, p) => (a.caFile = p)), mail: file((a, p) => (a.caFile = p)) },
  smtp: {
    mail: (a, v) => {
      const server = parseSmtp(v);
      if (typeof server === 'string') return server;
      a.smtp = server;
      return null;
    },
  },
  starttls: {
    mail: (a, v) => {
      if (v !== 'required' && v !== 'opportunistic' && v !== 'off') return `expected required (the default: no mail in clear), opportunistic (when the server offers it) or off, got '${v}'`;
      a.starttls = v;
      return null;
    },
  },
  user: {
    mail: (a, v) => {
      if (/[\x00-\x20\x7f]/.test(v) || v.length > 256) return `expected a user name without spaces or control characters, got '${v}'`;
      a.user = v;
      return null;
    },
  },
  password_file: { mail: file((a, p) => (a.passwordFile = p)) },
  format: {
    webhook: (a, v) => {
      if (v !== 'tallow' && v !== 'slack') return `expected tallow (the JSON schema of tallow.conf(5)) or slack ({"text": ...}), got '${v}'`;
      a.format = v;
      return null;
    },
  },
  mail_to: {
    mail: (a, v) => {
      const to = v.split(',').map((s) => s.trim());
      const bad = to.find((t) => !MAILBOX.test(t));
      if (bad !== undefined) return `expected mail addresses separated by commas (user@host, or a local user), got '${bad}'`;
      a.to = to;
      return null;
    },
  },
  mail_from: {
    mail: (a, v) => {
      if (!MAILBOX.test(v)) return `expected one mail address (user@host), got '${v}'`;
      a.from = v;
      return null;
    },
  },
  sendmail: {
    mail: (a, v) => {
      const argv = parseCommand(v, true);
      if (typeof argv === 'string') return argv;
      if (argv.some((w) => /\{[a-z]+\}|%s/.test(w))) return 'no placeholders here: -t -oi are added and the message comes on standard input';
      a.sendmail = argv;
      return null;
    },
  },
  digest: { mail: duration(7 * 86400, (a, ms) => (a.digestMs = ms)) },
  report: {
    mail: (a, v) => {
      if (v === 'off') {
        a.report = null;
        return null;
      }
      const t = parseDailyTime(v);
      if (typeof t === 'string') return `${t} (or off)`;
      a.report = t;
      return null;
    },
  },
  timeout: {
    command: duration(3600, (a, ms) => (a.timeoutMs = ms)),
    webhook: duration(3600, (a, ms) => (a.timeoutMs = ms)),
    mail: duration(3600, (a, ms) => (a.timeoutMs = ms)),
  },
  queue: {
    command: whole(1, 10_000_000, (a, n) => (a.queue = n)),
    webhook: whole(1, 10_000_000, (a, n) => (a.queue = n)),
    mail: whole(1, 10_000_000, (a, n) => (a.queue = n)),
  },
};

const MAIN: Record<string, ActionKind> = { ban_command: 'command', unban_command: 'command', notify_command: 'command', url: 'webhook', mail_to: 'mail' };

function defaults(kind: ActionKind, name: string, where: string): ActionConfig {
  const common = { name, where, queue: 100_000 };
  if (kind === 'command') return { ...common, kind, ban: null, unban: null, concurrency: 4, batch: 0, restored: false, timeoutMs: 30_000 };
  if (kind === 'webhook') return { ...common, kind, url: '', on: ['ban', 'unban', 'notify'], bearerFile: '', secretFile: '', caFile: '', batch: 500, format: 'tallow', timeoutMs: 10_000 };
  return { ...common, kind, on: ['ban', 'notify'], to: [], from: '', sendmail: ['/usr/sbin/sendmail'], digestMs: 15 * 60_000, timeoutMs: 60_000, report: { hour: 6, minute: 0 }, smtp: null, starttls: 'required', user: '', passwordFile: '', caFile: '' };
}

/** The SMTP keys only with smtp=, a user with its password and the other way round. */
function smtpCheck(a: MailAction, line: (key: string) => number | undefined): { key: string; line: number; message: string } | null {
  const given = (k: string) => line(k) !== undefined;
  if (!a.smtp) {
    const k = ['starttls', 'user', 'password_file', 'ca_file'].find(given);
    if (k) return { key: k, line: line(k)!, message: 'only for mail sent by SMTP: give smtp=host:port too (without it, mail goes through sendmail)' };
    return null;
  }
  if (given('sendmail')) return { key: 'sendmail', line: line('sendmail')!, message: 'smtp= is given too: one way to send, SMTP or sendmail' };
  if (a.smtp.tls && given('starttls')) return { key: 'starttls', line: line('starttls')!, message: `${a.smtp.url} is TLS from the start; starttls is for smtp://` };
  if (given('user') !== given('password_file')) {
    const k = given('user') ? 'user' : 'password_file';
    return { key: k, line: line(k)!, message: 'SMTP AUTH needs both user and password_file (a file readable by root only holding the password)' };
  }
  return null;
}

export function isActionKey(key: string): boolean {
  return key === 'actions' || key.startsWith('action.');
}

interface Line {
  value: string;
  line: number;
}

export type Built = { ok: true; settings: ActionSettings } | { ok: false; line: number; message: string };

/** The action keys of one file, collected line by line (add), checked as a whole (build). */
export class ActionCollector {
  private readonly defs = new Map<string, Map<string, Line>>();
  private used: Line | null = null;

  constructor(private readonly file: string) {}

  /** One `action.NAME.KEY=VALUE` or `actions=...` line: an error message, or null. */
  add(key: string, value: string, line: number): string | null {
    if (value === '') return `${key}: empty value`;
    if (key === 'actions') {
      if (this.used) return `actions: given twice (first on line ${this.used.line})`;
      this.used = { value, line };
      return null;
    }
    const m = /^action\.([^.]*)\.([^.]*)$/.exec(key);
    if (!m) return `'${key}': expected action.NAME.KEY (for example action.ufw.ban_command)`;
    const [, name, sub] = m;
    if (!NAME.test(name)) return `${key}: an action's name is 1 to 32 of a-z 0-9 _ - (starting with a letter or digit), got '${name}'`;
    if (!Object.prototype.hasOwnProperty.call(KEYS, sub)) return `${key}: unknown key '${sub}' (an action's keys: ${Object.keys(KEYS).sort().join(', ')})`;
    let def = this.defs.get(name);
    if (!def) this.defs.set(name, (def = new Map()));
    const had = def.get(sub);
    if (had) return `${key}: given twice (first on line ${had.line})`;
    def.set(sub, { value, line });
    return null;
  }

  build(): Built {
    const actionDefs: ActionConfig[] = [];
    for (const [name, def] of this.defs) {
      const fail = (l: number, message: string): Built => ({ ok: false, line: l, message });
      const first = Math.min(...[...def.values()].map((l) => l.line));
      const mains = [...def].filter(([k]) => MAIN[k]).sort((a, b) => a[1].line - b[1].line);
      if (mains.length === 0) return fail(first, `action.${name}: what does it do? give it ban_command/unban_command (a command), url (a webhook) or mail_to (a mail); notify_command (a command) for notify rules' logins`);
      const kind = MAIN[mains[0][0]];
      const other = mains.find(([k]) => MAIN[k] !== kind);
      if (other) return fail(other[1].line, `action.${name}.${other[0]}: action.${name} is already a ${kind} action (action.${name}.${mains[0][0]}); one kind per action, give this one another name`);
      const a = defaults(kind, name, `${this.file}:${first}`);
      for (const [sub, { value, line }] of [...def].sort((x, y) => x[1].line - y[1].line)) {
        const apply = (KEYS[sub] as Record<string, Apply<ActionConfig> | undefined>)[kind];
        if (!apply) return fail(line, `action.${name}.${sub}: not a key of a ${kind} action (its keys: ${Object.keys(KEYS).filter((k) => (KEYS[k] as Record<string, unknown>)[kind]).sort().join(', ')})`);
        const err = apply(a, value);
        if (err) return fail(line, `action.${name}.${sub}: ${err}`);
      }
      if (a.kind === 'command') {
        for (const k of ['ban_command', 'unban_command', 'notify_command'] as const) {
          const l = def.get(k);
          if (!l) continue;
          // A login runs on its own, batch= or not: it is one event, and its values are its own.
          const argv = k === 'notify_command' ? parseCommand(l.value, false, true) : parseCommand(l.value, a.batch > 0);
          if (typeof argv === 'string') return fail(l.line, `action.${name}.${k}: ${argv}`);
          a[k === 'ban_command' ? 'ban' : k === 'unban_command' ? 'unban' : 'notify'] = argv;
        }
      }
      if (a.kind === 'mail') {
        const err = smtpCheck(a, (k) => def.get(k)?.line);
        if (err) return fail(err.line, `action.${name}.${err.key}: ${err.message}`);
      }
      actionDefs.push(a);
    }
    let actions: string[] | null = null;
    if (this.used) {
      const { value, line } = this.used;
      actions = value === 'all' ? null : value === 'none' ? [] : value.split(',').map((s) => s.trim());
      const unknown = actions?.find((n) => !this.defs.has(n));
      if (unknown !== undefined) return { ok: false, line, message: `actions: no action named '${unknown}' (defined: ${[...this.defs.keys()].join(', ') || 'none'}; define it with action.${unknown || 'NAME'}.KEY=...)` };
    }
    return { ok: true, settings: { actionDefs, actions } };
  }
}
