// `tallow history [ADDRESS|NETWORK] [--since WHEN] [--rule R] [--top] [--json]`: asked of the
// running daemon over its control socket; when it is not running, read straight from the store
// (the SQLite file read-only, or PostgreSQL). Exit status as for the other commands (exit.ts):
// 0 done, 1 refused or no history, 64 bad usage, 76 bad answer, 77 permission denied, 78 tallow.conf.
import * as fs from 'node:fs';
import { Allowlist } from './allowlist';
import { ConfigError, DEFAULT_CONFIG_FILE, loadConfig, type Config } from './config';
import { CtlFailure, EXIT_CONFIG, EXIT_NOT_RUNNING, EXIT_OK, EXIT_PROTOCOL, EXIT_REFUSED, EXIT_USAGE, request, type CtlIO } from './ctl';
import { formatDuration, table } from './ctl-format';
import { historyStore } from './history';
import { historyQuery, validateHistory, type HistoryRequest, type HistoryResult } from './history/query';
import { parseDuration } from './history/settings';
import { SqliteStore } from './history/sqlite';
import type { HistoryBan, HistoryItem, TopItem } from './history/store';
import { errText } from './limits';
import { command } from './commands';
import { helpText, parseCommand, synopsis, UsageError, type ParsedCommand } from './options';

export const HISTORY_USAGE = synopsis(command('history')!);

/** `2h`, `7d` (that long ago), `2026-11-20`, `2026-11-20T10:00` (local time unless a zone is given) -> ms. */
export function parseSince(text: string, now = Date.now()): number {
  const ago = parseDuration(text);
  if (ago !== null && /[smhdw]$/.test(text)) return now - ago * 1000;
  if (/^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2})?(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})?)?$/.test(text)) {
    const t = Date.parse(text.length === 10 ? `${text}T00:00` : text.replace(' ', 'T'));
    if (Number.isFinite(t)) return t;
  }
  throw new UsageError(`--since: expected a time ago (30m, 6h, 7d, 2w) or a date (2026-11-20, 2026-11-20T10:00), not ${JSON.stringify(text)}`);
}

interface Parsed {
  req: HistoryRequest;
  json: boolean;
  socket?: string;
  config?: string;
}

function parse(p: ParsedCommand): Parsed {
  const v = p.values;
  const out: Parsed = { req: { cmd: 'history' }, json: v.json === true };
  if (typeof v.since === 'string') out.req.since = parseSince(v.since);
  if (typeof v.rule === 'string') out.req.rule = v.rule;
  if (typeof v.limit === 'string') {
    if (!/^\d{1,6}$/.test(v.limit) || Number(v.limit) < 1 || Number(v.limit) > 100_000) throw new UsageError(`--limit must be a whole number from 1 to 100000, not ${JSON.stringify(v.limit)}`);
    out.req.limit = Number(v.limit);
  }
  if (v.top === true) out.req.top = true;
  if (typeof v.socket === 'string') out.socket = v.socket;
  if (typeof v.config === 'string') out.config = v.config;
  if (p.positionals.length) out.req.address = p.positionals[0];
  return out;
}

const when = (ms: number | null): string => (ms ? new Date(ms).toISOString().replace('T', ' ').slice(0, 19) : '-');

function banText(b: HistoryBan): string {
  const parts = [`${formatDuration(b.seconds)}`, b.reason + (b.pattern && b.pattern !== 'manual' ? ` ${b.pattern}` : ''), `score ${b.score.toFixed(2)}`, `count ${b.count}`];
  if (b.step) parts.push(`step ${b.step}`);
  if (b.origin !== 'rule') parts.push(`origin ${b.origin}`);
  parts.push(b.ended ? `ended ${when(b.ended)} (${b.endReason})` : b.expiry > Date.now() ? `until ${when(b.expiry)}` : `ran to ${when(b.expiry)}`);
  return parts.join(', ');
}

function itemRow(i: HistoryItem, allowed: Set<string>): string[] {
  const addr = allowed.has(i.address) ? `${i.address} (allowlisted)` : i.address;
  if (i.kind === 'ban') return [when(i.since), addr, 'ban', banText(i)];
  return [when(i.at), addr, 'match', i.pattern === '*' ? `${i.n} more matches that hour (past history_matches_per_hour)` : i.pattern];
}

function topRows(items: TopItem[], withBans: boolean): string[][] {
  const head = withBans ? ['ADDRESS', 'BANS', 'MATCHES', 'LAST BAN', 'RULES'] : ['ADDRESS', 'MATCHES', 'LAST SEEN', 'RULES'];
  const rows = [head];
  for (const t of items) {
    const rules = t.rules.slice(0, 3).join(' ') + (t.rules.length > 3 ? ' ...' : '') || '-';
    rows.push(withBans ? [t.address, String(t.bans), String(t.matches), when(t.lastBan), rules] : [t.address, String(t.matches), when(t.lastSeen), rules]);
  }
  return rows;
}

export function formatHistory(r: HistoryResult): string {
  let out = '';
  const allowed = new Set(r.allowlisted.map((a) => a.address));
  if (r.top) out += r.top.length ? table(topRows(r.top, true), [false, true, true, false, false]) : 'no bans in the history\n';
  if (r.items) {
    out += r.items.length ? table([['TIME (UTC)', 'ADDRESS', 'EVENT', 'DETAILS'], ...r.items.map((i) => itemRow(i, allowed))]) : 'nothing in the history\n';
  }
  if (r.allowlisted.length) {
    out += '\nallowlisted addresses that attacked (never scored or banned; check their whitelist entries):\n';
    out += table(topRows(r.allowlisted, false), [false, true, false, false]);
  }
  return out;
}

/** The daemon is not running: the store itself, read-only. */
async function offline(config: Config, req: HistoryRequest, io: CtlIO): Promise<HistoryResult | number> {
  const quiet = { info() {}, warn() {}, debug() {}, error() {} };
  const store = historyStore(config, quiet, true);
  if (!store) {
    io.err('tallow history: the history is off (history=off in tallow.conf)\n');
    return EXIT_REFUSED;
  }
  if (store instanceof SqliteStore && !fs.existsSync(store.file)) {
    io.err(`tallow history: no history yet (${store.file} does not exist; the daemon creates it)\n`);
    return EXIT_REFUSED;
  }
  try {
    await store.open();
    const allow = new Allowlist(config.whitelist);
    return await historyQuery(store, req, (a, f) => allow.has(a, f));
  } finally {
    await store.close();
  }
}

export async function historyRun(args: string[], io: CtlIO): Promise<number> {
  const spec = command('history')!;
  let p: Parsed;
  try {
    const parsed = parseCommand(spec, args);
    if (parsed.help) {
      io.out(helpText(spec));
      return EXIT_OK;
    }
    p = parse(parsed);
  } catch (e) {
    io.err(`tallow history: ${(e as Error).message}\nusage: ${HISTORY_USAGE}\n`);
    return EXIT_USAGE;
  }
  const checked = validateHistory({ ...p.req });
  if ('error' in checked) {
    io.err(`tallow ${checked.error}\n`);
    return EXIT_USAGE;
  }
  let config: Config;
  try {
    config = loadConfig(p.config ?? DEFAULT_CONFIG_FILE, p.config !== undefined);
  } catch (e) {
    io.err(`tallow: ${(e as Error).message}\n`);
    return e instanceof ConfigError ? EXIT_CONFIG : EXIT_USAGE;
  }
  let result: HistoryResult;
  try {
    const res = await request(p.socket ?? config.socket, checked.req, io.timeoutMs ?? 60_000);
    if (!res.ok) {
      io.err(`tallow history: ${res.error}\n`);
      return EXIT_REFUSED;
    }
    result = res.result as HistoryResult;
  } catch (e) {
    if (!(e instanceof CtlFailure) || e.code !== EXIT_NOT_RUNNING) {
      io.err(`tallow: ${(e as Error).message}\n`);
      return e instanceof CtlFailure ? e.code : EXIT_PROTOCOL;
    }
    try {
      const r = await offline(config, checked.req, io);
      if (typeof r === 'number') return r;
      result = r;
    } catch (err) {
      io.err(`tallow history: cannot read the history (the daemon is not running): ${errText(err)}\n`);
      return EXIT_REFUSED;
    }
  }
  if (!result || typeof result !== 'object' || !Array.isArray(result.allowlisted)) {
    io.err('tallow: unexpected answer from the daemon: no history result\n');
    return EXIT_PROTOCOL;
  }
  io.out(p.json ? JSON.stringify(result, null, 2) + '\n' : formatHistory(result));
  return EXIT_OK;
}

export function historyMain(args: string[]): Promise<number> {
  return historyRun(args, { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) });
}
