// What `tallow status|list|rules|reload|set` print for people: the daemon's answers
// (control-results.ts) as aligned tables and short lines.
import type { WindowFigures } from './history/figures';
import type { ListItem, ReloadResult, RuleInfo, SettingResult, StatusResult } from './control-results';
import { extraPairs, notifyText, type RuleInfoExtra } from './rule-info';

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
  if (s.fleet) pairs.push(...fleetLines(s.fleet, when));
  if (s.history) pairs.push(...historyLines(s.history, when));
  if (s.rules?.length) pairs.push(['rules', s.rules.map((r) => (r.enabled ? `${r.name} ${r.matches} matches ${r.bansActive} banned` : `${r.name} off${r.bansActive ? ` (${r.bansActive} banned)` : ''}`)).join(', ')]);
  const w = Math.max(...pairs.map(([k]) => k.length)) + 1;
  return pairs.map(([k, v]) => `${(k + ':').padEnd(w)} ${v}`).join('\n') + '\n';
}

/** `fleet:` and its figures, for `tallow status`. */
function fleetLines(f: NonNullable<StatusResult['fleet']>, when: (ms: number | null) => string): [string, string][] {
  const state = f.connected ? `connected since ${when(f.since)}` : `DISCONNECTED since ${when(f.since)}${f.lastError ? ` (${f.lastError})` : ''}`;
  return [
    ['fleet', `${state}; node ${f.node}, ${f.where}`],
    ['fleet nodes seen', f.nodesSeen.length ? f.nodesSeen.join(', ') : 'none yet'],
    ['fleet remote bans', `${f.remoteApplied} applied, ${f.ignoredAllowlisted} allowlisted, ${f.ignoredCapped} over fleet_max_per_minute${f.quorum > 1 ? `, ${f.quorumWaiting} waiting for quorum ${f.quorum}` : ''}${f.accept ? '' : ' (fleet_accept=no)'}`],
    ['fleet published', `${f.published}, ${f.queued} queued, ${f.dropped} dropped; last id ${f.lastId}`],
  ];
}

/** `history:` and the last 24 hours and 7 days, as the store holds them (restarts included). */
function historyLines(h: NonNullable<StatusResult['history']>, when: (ms: number | null) => string): [string, string][] {
  const queue = `${h.queued} queued, ${h.dropped} dropped`;
  if ('error' in h) return [['history', `${h.where}: NO ANSWER (${h.error}); ${queue}`]];
  const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
  // `3 bans (2 repeat offenders) and 1 from the fleet, of 3 addresses`; plainly `3 bans of 3 addresses`.
  const bans = (w: WindowFigures) =>
    `${plural(w.bans, 'ban')}${w.repeatBans ? ` (${plural(w.repeatBans, 'repeat offender')})` : ''}` +
    `${w.remoteBans ? ` and ${w.remoteBans} from the fleet,` : ''} of ${plural(w.addressesBanned, 'address', 'addresses')}`;
  return [
    ['history', `${h.where}, ${h.oldest === null ? 'empty' : `since ${when(h.oldest)}`}; ${queue}`],
    ['last 24 hours', `${bans(h.day)}; ${plural(h.day.matches, 'match', 'matches')} from ${plural(h.day.addressesMatched, 'address', 'addresses')}`],
    ['last 7 days', bans(h.week)],
  ];
}

/** Soonest to expire last: the longest bans first, then by address. */
export function formatList(items: ListItem[]): string {
  if (items.length === 0) return 'no addresses are banned\n';
  const sorted = [...items].sort((a, b) => b.remaining - a.remaining || a.address.localeCompare(b.address) || (a.ports ?? '').localeCompare(b.ports ?? ''));
  // RULE and PORTS from a daemon with rules per service; STEP only once bantime_increment has
  // made a repeat offender's ban longer.
  const rules = sorted.some((i) => i.rule !== undefined || i.ports !== undefined);
  const steps = sorted.some((i) => i.step);
  // ORIGIN once a ban came from elsewhere than this node's rules or its administrator (the fleet, the kernel).
  const origins = sorted.some((i) => i.origin !== undefined && i.origin !== 'rule' && i.origin !== 'manual');
  const head = ['ADDRESS', ...(rules ? ['RULE', 'PORTS'] : []), ...(origins ? ['ORIGIN'] : []), 'REMAINING', 'SCORE', 'COUNT', ...(steps ? ['STEP'] : []), 'PATTERN'];
  const right = head.map((h) => ['REMAINING', 'SCORE', 'COUNT', 'STEP'].includes(h));
  const rows = [head];
  for (const i of sorted) {
    rows.push([
      i.address,
      ...(rules ? [i.rule ?? '-', i.ports ?? 'all'] : []),
      ...(origins ? [i.origin ?? 'rule'] : []),
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
export function formatRules(rules: (RuleInfo & RuleInfoExtra)[]): string {
  if (rules.length === 0) return 'no rules\n';
  const out: string[] = [];
  for (const r of rules) {
    const prefix = r.prefix[4] === 32 && r.prefix[6] === 128 ? 'the address' : `networks /${r.prefix[4]} (IPv4), /${r.prefix[6]} (IPv6)`;
    const head: [string, string][] = [['defined in', r.where], ['filter', r.filter]];
    // A notify rule never scores or bans: its action instead of a policy, scores and bans.
    const pairs: [string, string][] = r.action === 'notify' ? [...head, ['action', notifyText(r)], ...extraPairs(r, seconds), ['matches', String(r.matches)]] : [
      ...head,
      ['threshold', `${fmtNumber(r.threshold)}${r.pool === '' ? " (tallow.conf's shared score)" : ''}`],
      ['findtime', seconds(r.findtime, 'off (scores fall only when a record is pruned)')],
      ['bantime', seconds(r.bantime)],
      ['ports', r.ports],
      ['target', prefix],
      ...extraPairs(r, seconds),
      ['matches', String(r.matches)],
      ['bans made', String(r.bans)],
      ['bans active', String(r.bansActive)],
    ];
    const w = Math.max(...pairs.map(([k]) => k.length)) + 1;
    out.push(`rule ${r.name}: ${r.enabled ? 'enabled' : 'disabled'}`);
    for (const [k, v] of pairs) out.push(`  ${(k + ':').padEnd(w)} ${v}`);
    if (r.action === 'notify') continue;
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

/** `tallow reload`: what changed, and what waits for a restart. */
export function formatReload(r: ReloadResult): string {
  const lines = [`reloaded ${r.config ?? 'the built-in defaults'} and the patterns`];
  for (const c of r.changes) lines.push(`  ${c}`);
  if (r.dropped.length) lines.push(`  settings made with tallow set dropped: ${r.dropped.join(', ')}`);
  if (r.restart.length) lines.push(`  changed settings that take effect only after a restart: ${r.restart.join(', ')}`);
  return lines.join('\n') + '\n';
}

/** `tallow get` / `tallow set`: `sshd.bantime = 7200 (2h 0m 0s), set at runtime`. */
export function formatSetting(r: SettingResult): string {
  const v = (n: number) => (r.setting === 'threshold' ? fmtNumber(n) : `${n} (${formatDuration(n)})`);
  const notes: string[] = [];
  if (r.runtime) notes.push('set at runtime: lost at the next reload or restart');
  if (r.shared) notes.push("tallow.conf's shared score (threshold and expires)");
  let out = `${r.key} = ${v(r.value)}${notes.length ? `  (${notes.join('; ')})` : ''}\n`;
  if (r.previous !== undefined) {
    out = `${r.key}: ${v(r.previous)} -> ${v(r.value)} (until the next reload or restart)\n`;
    for (const c of r.changes ?? []) out += `  ${c}\n`;
  }
  return out;
}
