// `tallow status|list|rules|metrics|ban|unban ...`: clients of the daemon's control socket. One
// request, one response, printed for people (or as JSON with `status --json`, `list --json`,
// `rules --json`; `metrics` prints Prometheus' text format). Exit status (documented in tallow(8)):
//   0  done
//   1  the daemon refused the request (its message is printed)
//   2  bad usage: unknown option, missing or invalid address or time
//   3  the daemon is not running (no socket, or nothing listening on it)
//   4  permission denied on the socket (the socket is root-only)
//   5  the daemon did not answer properly (timeout, connection lost, unreadable answer)
//   78 tallow.conf could not be read (EX_CONFIG)
import * as net from 'node:net';
import { DEFAULT_CONFIG_FILE, loadConfig } from './config';
import { readOptions, UsageError } from './options';
import {
  DEFAULT_SOCKET,
  MAX_BAN_SECONDS,
  validateRequest,
  type BanResult,
  type ControlRequest,
  type ControlResponse,
  type ListItem,
  type MetricsResult,
  type RuleInfo,
  type StatusResult,
  type UnbanResult,
} from './control';

export const EXIT_OK = 0;
export const EXIT_REFUSED = 1;
export const EXIT_USAGE = 2;
export const EXIT_NOT_RUNNING = 3;
export const EXIT_PERMISSION = 4;
export const EXIT_PROTOCOL = 5;
export const EXIT_CONFIG = 78;

export type Subcommand = 'status' | 'list' | 'rules' | 'metrics' | 'ban' | 'unban';

export interface CtlIO {
  out(text: string): void;
  err(text: string): void;
  /** ms to wait for the daemon's answer */
  timeoutMs?: number;
}

const defaultIO: CtlIO = {
  out: (t) => process.stdout.write(t),
  err: (t) => process.stderr.write(t),
};

const USAGE: Record<Subcommand, string> = {
  status: 'tallow status [--json] [--socket PATH] [--config FILE]',
  list: 'tallow list [--json] [--socket PATH] [--config FILE]',
  rules: 'tallow rules [NAME] [--json] [--socket PATH] [--config FILE]',
  metrics: 'tallow metrics [--socket PATH] [--config FILE]',
  ban: 'tallow ban ADDRESS [--time SECONDS] [--socket PATH] [--config FILE]',
  unban: 'tallow unban ADDRESS|NETWORK [--socket PATH] [--config FILE]',
};


interface Parsed {
  socket?: string;
  config?: string;
  json: boolean;
  time?: number;
  positional: string[];
}

function parseArgs(sub: Subcommand, args: string[]): Parsed {
  const p: Parsed = { json: false, positional: [] };
  let rest = false;
  for (const o of readOptions(args)) {
    const name = o.name;
    if (rest) p.positional.push(o.arg);
    else if (name === '--socket') p.socket = o.value();
    else if (name === '--config') p.config = o.value();
    else if (name === '--json' && (sub === 'list' || sub === 'status' || sub === 'rules') && !o.inline) p.json = true;
    else if (name === '--time' && sub === 'ban') {
      const v = o.value();
      const n = /^[0-9]+$/.test(v) ? Number(v) : NaN;
      if (!Number.isSafeInteger(n) || n < 1 || n > MAX_BAN_SECONDS) {
        throw new UsageError(`--time must be a whole number of seconds from 1 to ${MAX_BAN_SECONDS}, not ${JSON.stringify(v)}`);
      }
      p.time = n;
    } else if (o.arg === '--') rest = true;
    else if (o.arg.startsWith('-') && o.arg.length > 1) {
      throw new UsageError(`unknown option ${o.arg}`);
    } else p.positional.push(o.arg);
  }
  // `rules` takes a rule name or none.
  const want = sub === 'ban' || sub === 'unban' || (sub === 'rules' && p.positional.length > 0) ? 1 : 0;
  if (p.positional.length < want) throw new UsageError('an ADDRESS is needed');
  if (p.positional.length > want) throw new UsageError(`unexpected argument ${JSON.stringify(p.positional[want])}`);
  return p;
}

/** The socket path: --socket, else `socket=` from --config FILE or /etc/tallow.conf, else the default. */
function socketPath(p: Parsed): string {
  if (p.socket) return p.socket;
  return loadConfig(p.config ?? DEFAULT_CONFIG_FILE, p.config !== undefined).socket || DEFAULT_SOCKET;
}

export class CtlFailure extends Error {
  constructor(message: string, readonly code: number) {
    super(message);
  }
}

/** Send one request, wait for one response line. */
export function request(sock: string, req: ControlRequest, timeoutMs = 10_000): Promise<ControlResponse> {
  return new Promise((resolve, reject) => {
    const c = net.createConnection(sock);
    let buf = '';
    let settled = false;
    const finish = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      c.destroy();
      fn();
    };
    const timer = setTimeout(
      () => finish(() => reject(new CtlFailure(`no answer from the daemon on ${sock} within ${timeoutMs / 1000} s`, EXIT_PROTOCOL))),
      timeoutMs,
    );
    c.setEncoding('utf8');
    c.on('connect', () => c.write(JSON.stringify(req) + '\n'));
    c.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      const line = buf.slice(0, nl);
      finish(() => {
        try {
          const res = JSON.parse(line) as ControlResponse;
          if (typeof res !== 'object' || res === null || typeof res.ok !== 'boolean') throw new Error('no "ok"');
          resolve(res);
        } catch {
          reject(new CtlFailure(`unreadable answer from the daemon on ${sock}`, EXIT_PROTOCOL));
        }
      });
    });
    c.on('end', () => finish(() => reject(new CtlFailure(`the daemon closed the connection on ${sock} without answering`, EXIT_PROTOCOL))));
    c.on('error', (e: NodeJS.ErrnoException) =>
      finish(() => {
        switch (e.code) {
          case 'ENOENT':
          case 'ECONNREFUSED':
          case 'ENOTDIR':
            return reject(new CtlFailure(`the daemon is not running (no socket at ${sock})`, EXIT_NOT_RUNNING));
          case 'EACCES':
          case 'EPERM':
            return reject(new CtlFailure(`permission denied on ${sock} (run as root)`, EXIT_PERMISSION));
          default:
            return reject(new CtlFailure(`cannot talk to the daemon on ${sock}: ${e.code ?? e.message}`, EXIT_PROTOCOL));
        }
      }),
    );
  });
}

/** 3725 -> "1h 2m 5s"; 90000 -> "1d 1h 0m"; whole seconds. */
export function formatDuration(seconds: number): string {
  let s = Math.max(0, Math.round(seconds));
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  if (d) return `${d}d ${h}h ${m}m`;
  if (h) return `${h}h ${m}m ${s}s`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

function score(n: number): string {
  return Number.isFinite(n) ? n.toFixed(2) : String(n);
}

/** Columns padded to their widest cell; the last column is not padded. */
export function table(rows: string[][], rightAligned: boolean[] = []): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows
    .map((r) =>
      r.map((c, i) => (i === r.length - 1 && !rightAligned[i] ? c : rightAligned[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join('  '),
    )
    .join('\n') + '\n';
}

export function formatStatus(s: StatusResult): string {
  const when = (ms: number | null | undefined): string => (ms ? new Date(ms).toISOString() : 'never');
  const pairs: [string, string][] = [
    ['version', String(s.version)],
    ['pid', String(s.pid)],
    ['uptime', formatDuration(s.uptime)],
    ['backend', String(s.backend)],
    ['entries read', String(s.entries)],
    ['matches', String(s.matches)],
    ['bans active', String(s.bansActive)],
    ['records', String(s.records)],
    ['journal cursor', s.cursor ?? '(none yet)'],
  ];
  if (s.config !== undefined) pairs.push(['config', s.config ?? '(built-in defaults)']);
  if (s.stateFile !== undefined) pairs.push(['state file', s.stateFile]);
  if (s.lastSave !== undefined) pairs.push(['last saved', when(s.lastSave)]);
  // One line for all rules: `sshd 12 matches 2 banned, postfix off`.
  if (s.rules?.length) pairs.push(['rules', s.rules.map((r) => (r.enabled ? `${r.name} ${r.matches} matches ${r.bansActive} banned` : `${r.name} off${r.bansActive ? ` (${r.bansActive} banned)` : ''}`)).join(', ')]);
  const w = Math.max(...pairs.map(([k]) => k.length)) + 1;
  return pairs.map(([k, v]) => `${(k + ':').padEnd(w)} ${v}`).join('\n') + '\n';
}

/** Soonest to expire last: the longest bans first, then by address. */
export function formatList(items: ListItem[]): string {
  if (items.length === 0) return 'no addresses are banned\n';
  const sorted = [...items].sort((a, b) => b.remaining - a.remaining || a.address.localeCompare(b.address) || (a.ports ?? '').localeCompare(b.ports ?? ''));
  // RULE and PORTS from a daemon with rules per service; STEP only once bantime_increment has
  // made a repeat offender's ban longer.
  const rules = sorted.some((i) => i.rule !== undefined || i.ports !== undefined);
  const steps = sorted.some((i) => i.step);
  const head = ['ADDRESS', ...(rules ? ['RULE', 'PORTS'] : []), 'REMAINING', 'SCORE', 'COUNT', ...(steps ? ['STEP'] : []), 'PATTERN'];
  const right = head.map((h) => ['REMAINING', 'SCORE', 'COUNT', 'STEP'].includes(h));
  const rows = [head];
  for (const i of sorted) {
    rows.push([
      i.address,
      ...(rules ? [i.rule ?? '-', i.ports ?? 'all'] : []),
      formatDuration(i.remaining),
      score(i.score),
      String(i.count),
      ...(steps ? [String(i.step ?? 0)] : []),
      i.pattern ?? '-',
    ]);
  }
  return table(rows, right);
}

/** A number of seconds as `3600 s (1h 0m 0s)`; 0 as `off` (a findtime of 0 is no window). */
function seconds(n: number, zero = '0 s'): string {
  return n === 0 ? zero : `${n} s (${formatDuration(n)})`;
}

/** `tallow rules`: one block per rule, like `fail2ban-client status JAIL`. */
export function formatRules(rules: RuleInfo[]): string {
  if (rules.length === 0) return 'no rules\n';
  const out: string[] = [];
  for (const r of rules) {
    const prefix = r.prefix[4] === 32 && r.prefix[6] === 128 ? 'the address' : `networks /${r.prefix[4]} (IPv4), /${r.prefix[6]} (IPv6)`;
    const pairs: [string, string][] = [
      ['defined in', r.where],
      ['filter', r.filter],
      ['threshold', `${fmtNumber(r.threshold)}${r.pool === '' ? " (tallow.conf's shared score)" : ''}`],
      ['findtime', seconds(r.findtime, 'off (scores fall only when a record is pruned)')],
      ['bantime', seconds(r.bantime)],
      ['ports', r.ports],
      ['target', prefix],
      ['matches', String(r.matches)],
      ['bans made', String(r.bans)],
      ['bans active', String(r.bansActive)],
    ];
    const w = Math.max(...pairs.map(([k]) => k.length)) + 1;
    out.push(`rule ${r.name}: ${r.enabled ? 'enabled' : 'disabled'}`);
    for (const [k, v] of pairs) out.push(`  ${(k + ':').padEnd(w)} ${v}`);
    if (r.top.length === 0) out.push('  top addresses: none');
    else {
      out.push('  top addresses:');
      const rows = r.top.map((t) => ['   ', t.address, score(t.score), `${t.count} match${t.count === 1 ? '' : 'es'}`, t.banned ? 'banned' : '']);
      out.push(...table(rows, [false, false, true, true, false]).trimEnd().split('\n').map((l) => l.trimEnd()));
    }
  }
  return out.join('\n') + '\n';
}

function fmtNumber(n: number): string {
  return Number.isInteger(n) ? String(n) : String(Math.round(n * 1e6) / 1e6);
}

/** Testable core of ctlMain: all output through `io`. */
export async function ctlRun(sub: Subcommand, args: string[], io: CtlIO = defaultIO): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    io.out(`usage: ${USAGE[sub]}\n`);
    return EXIT_OK;
  }
  let p: Parsed;
  try {
    p = parseArgs(sub, args);
  } catch (e) {
    io.err(`tallow ${sub}: ${(e as Error).message}\nusage: ${USAGE[sub]}\n`);
    return EXIT_USAGE;
  }
  let sock: string;
  try {
    sock = socketPath(p);
  } catch (e) {
    io.err(`tallow: ${(e as Error).message}\n`);
    return EXIT_CONFIG;
  }
  let req: ControlRequest;
  if (sub === 'ban') req = p.time === undefined ? { cmd: 'ban', address: p.positional[0] } : { cmd: 'ban', address: p.positional[0], seconds: p.time };
  else if (sub === 'unban') req = { cmd: 'unban', address: p.positional[0] };
  else if (sub === 'rules') req = p.positional.length ? { cmd: 'rules', name: p.positional[0] } : { cmd: 'rules' };
  else req = { cmd: sub };
  // Same checks as the daemon: a typo is reported without bothering it (and without root).
  const checked = validateRequest(req);
  if ('error' in checked) {
    io.err(`tallow ${checked.error}\n`);
    return EXIT_USAGE;
  }

  let res: ControlResponse;
  try {
    res = await request(sock, checked.req, io.timeoutMs);
  } catch (e) {
    io.err(`tallow: ${(e as Error).message}\n`);
    return e instanceof CtlFailure ? e.code : EXIT_PROTOCOL;
  }
  if (!res.ok) {
    io.err(`tallow ${sub}: ${res.error}\n`);
    return EXIT_REFUSED;
  }
  try {
    switch (sub) {
      case 'status':
        io.out(p.json ? JSON.stringify(res.result, null, 2) + '\n' : formatStatus(res.result as StatusResult));
        break;
      case 'metrics': {
        const m = res.result as MetricsResult;
        if (typeof m?.text !== 'string') throw new Error('metrics result has no text');
        io.out(m.text);
        break;
      }
      case 'list': {
        const items = res.result as ListItem[];
        if (!Array.isArray(items)) throw new Error('list result is not an array');
        io.out(p.json ? JSON.stringify(items, null, 2) + '\n' : formatList(items));
        break;
      }
      case 'rules': {
        const rules = res.result as RuleInfo[];
        if (!Array.isArray(rules)) throw new Error('rules result is not an array');
        io.out(p.json ? JSON.stringify(rules, null, 2) + '\n' : formatRules(rules));
        break;
      }
      case 'ban': {
        const b = res.result as BanResult;
        io.out(`banned ${b.address} for ${b.seconds} s (${formatDuration(b.seconds)})\n`);
        if (b.pending) io.err(`tallow ban: note: ${b.pending}\n`);
        break;
      }
      case 'unban': {
        const u = res.result as UnbanResult;
        // Several bans (one per scope: sshd's on 22, postfix's on 25) are lifted at once: say which.
        const which = u.lifted && (u.lifted.length > 1 || (u.lifted.length === 1 && u.lifted[0] !== 'all')) ? ` (${u.lifted.map((x) => (x === 'all' ? 'all ports' : `ports ${x}`)).join('; ')})` : '';
        io.out(u.wasBanned ? `unbanned ${u.address}${which}; its record is cleared\n` : `${u.address} was not banned; its record (if any) is cleared\n`);
        if (u.pending) io.err(`tallow unban: note: ${u.pending}\n`);
        break;
      }
    }
  } catch (e) {
    io.err(`tallow: unexpected answer from the daemon: ${(e as Error).message}\n`);
    return EXIT_PROTOCOL;
  }
  return EXIT_OK;
}

export function ctlMain(subcommand: Subcommand, args: string[]): Promise<number> {
  return ctlRun(subcommand, args, defaultIO);
}
