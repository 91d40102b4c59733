// `tallow test`'s report: matches per pattern, per rule when enabled rules have policies of their
// own (or one rule was asked for with --rule), the bans each rule's policy would make, and the lines no
// pattern matched. tallow's own files (one shared policy) get exactly the report they always had.
import type { Allowlist } from './allowlist';
import type { Config } from './config';
import type { Matcher } from './matcher';
import { MAX_MESSAGE_LENGTH, type Pattern, type PatternFile } from './patterns';
import type { Rule } from './rule';
import { portsText } from './scoring';
import { FULL_PREFIX } from './target';

export interface PatternStats {
  pattern: Pattern;
  lines: number;
  addresses: Map<string, number>;
}

export interface RuleStats {
  rule: Rule;
  lines: number;
}

export interface BanRow {
  /** the target: an address or a network */
  address: string;
  rule: string | null;
  scope: string;
  seconds: number;
  reason: string;
  pattern: string;
  score: number;
  count: number;
  times: number;
  first: string; // where: line number or time
}

/** What the report reads of a run (tester.ts's Run). */
export interface RunView {
  files: PatternFile[];
  config: Config;
  matcher: Matcher;
  allow: Allowlist;
  rules: Rule[];
  only: Rule | null;
  perPattern: Map<string, PatternStats>;
  perRule: Map<string, RuleStats>;
  bans: Map<string, BanRow>;
  unmatched: string[];
  keepUnmatched: boolean;
  total: number;
  matched: number;
  otherRules: number;
  badAddress: number;
  allowlisted: Set<string>;
}

function pad(rows: string[][], right: boolean[]): string[] {
  const w: number[] = [];
  for (const r of rows) r.forEach((c, i) => (w[i] = Math.max(w[i] ?? 0, c.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : right[i] ? c.padStart(w[i]) : c.padEnd(w[i]))).join('  ').trimEnd());
}

const MAX_ADDRESSES_SHOWN = 20;

/** `threshold 3, findtime 60 s, bantime 3600 s, ports 25/tcp, networks /24 /64` */
export function policyText(r: Rule): string {
  const target = r.prefix[4] >= FULL_PREFIX[4] && r.prefix[6] >= FULL_PREFIX[6] ? 'the address' : `networks /${r.prefix[4]} /${r.prefix[6]}`;
  return `threshold ${r.threshold}${r.pool === '' ? ' (shared score)' : ''}, findtime ${r.findtime ? `${r.findtime} s` : 'off'}, bantime ${r.bantime} s, ports ${portsText(r.scope, r.scope.id)}, ${target}`;
}

export function report(run: RunView, source: string, out: (text: string) => void): void {
  const o: string[] = [];
  // Enabled rules with their own policy (or --rule) get the per-rule report; tallow's files (and the
  // shipped rules that are off) the one they always had. A disabled rule matches nothing.
  const enabled = run.rules.filter((r) => r.enabled);
  const perRule = run.only !== null || enabled.some((r) => r.pool !== '');
  const nfiles = new Set(run.files.map((f) => f.path)).size;
  const npat = run.files.reduce((n, f) => n + f.patterns.length, 0);
  o.push(`Patterns: ${npat} in ${nfiles} file${nfiles === 1 ? '' : 's'} (${[...new Set(run.files.map((f) => f.path))].join(', ')})`);
  if (run.only) {
    const not = run.total - run.matched - run.otherRules;
    o.push(`Read ${run.total} ${source}: ${run.matched} matched by rule ${run.only.name}, ${run.otherRules} by other rules, ${not} not matched.`);
  } else o.push(`Read ${run.total} ${source}: ${run.matched} matched, ${run.total - run.matched} not matched.`);
  if (run.badAddress) o.push(`${run.badAddress} matched a pattern whose captured address was not a valid IP address (ignored).`);
  const oversized = run.matcher.metrics.oversizedMessages;
  if (oversized) o.push(`${oversized} ${oversized === 1 ? 'was' : 'were'} longer than ${MAX_MESSAGE_LENGTH} characters: not matched (counted as oversized, as the daemon does).`);
  o.push('');

  const hits = [...run.perPattern.values()].filter((p) => p.lines > 0);
  if (hits.length === 0) o.push('No pattern matched.');
  else {
    o.push('Matches per pattern:');
    for (const p of hits) {
      o.push(`  ${p.pattern.name}: ${p.lines} line${p.lines === 1 ? '' : 's'} (score ${p.pattern.score}, ban ${p.pattern.ban})  ${p.pattern.source}`);
      const addrs = [...p.addresses].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
      const rows = addrs.slice(0, MAX_ADDRESSES_SHOWN).map(([a, n]) => ['   ', a, `${n}`, run.allowlisted.has(a) ? 'allowlisted, never banned' : '']);
      o.push(...pad(rows, [false, false, true, false]));
      if (addrs.length > MAX_ADDRESSES_SHOWN) o.push(`    ... and ${addrs.length - MAX_ADDRESSES_SHOWN} more addresses`);
    }
  }
  o.push('');

  if (perRule) {
    o.push(run.only ? 'Rule:' : 'Matches per rule:');
    for (const r of run.only ? [run.only] : enabled) {
      const n = run.perRule.get(r.name)?.lines ?? 0;
      o.push(`  ${r.name}${r.enabled ? '' : ' (disabled)'}: ${n} line${n === 1 ? '' : 's'}; ${policyText(r)}`);
    }
    o.push('');
  }

  const c = run.config;
  const title = run.only
    ? `Bans rule ${run.only.name} would make (${policyText(run.only)})`
    : perRule
      ? "Bans the rules would make (each by its rule's policy)"
      : `Bans the tracker would make (threshold ${c.threshold}, expires ${c.expires} s)`;
  if (run.bans.size === 0) o.push(`${title}: none.`);
  else {
    o.push(`${title}:`);
    const rule = (name: string | null) => run.rules.find((r) => r.name === name);
    const head = ['  ADDRESS', ...(perRule ? ['RULE', 'PORTS'] : []), 'SECONDS', 'REASON', 'SCORE', 'COUNT', 'TIMES', 'FIRST AT', 'PATTERN'];
    const rows = [head];
    for (const b of run.bans.values()) {
      const ports = perRule ? [b.rule ?? '-', portsText(rule(b.rule)?.scope, b.scope)] : [];
      rows.push([`  ${b.address}`, ...ports, String(b.seconds), b.reason, b.score.toFixed(2), String(b.count), String(b.times), b.first, b.pattern]);
    }
    o.push(...pad(rows, head.map((h) => ['SECONDS', 'SCORE', 'COUNT', 'TIMES'].includes(h))));
    const targets = new Set([...run.bans.values()].map((b) => b.address));
    const full = new Set([...run.bans.values()].filter((b) => b.reason === 'threshold').map((b) => b.address));
    if (perRule) {
      const nets = [...targets].filter((t) => t.includes('/')).length;
      o.push(`  ${targets.size - nets} address${targets.size - nets === 1 ? '' : 'es'}${nets ? ` and ${nets} network${nets === 1 ? '' : 's'}` : ''} banned, ${full.size} for their rule's full bantime.`);
    } else o.push(`  ${targets.size} address${targets.size === 1 ? '' : 'es'} banned, ${full.size} for the full ${c.expires} s.`);
  }

  if (run.keepUnmatched) {
    o.push('');
    if (run.unmatched.length === 0) o.push('Lines no pattern matched: none.');
    else {
      o.push(`Lines no pattern matched (${run.unmatched.length}):`);
      for (const u of run.unmatched) o.push(`  ${u}`);
    }
  }
  out(o.join('\n') + '\n');
}
