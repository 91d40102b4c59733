// Rules per service (issue 14): the blocks of the pattern files and their policy keys (parsed in
// patterns.ts) resolved into Rule objects, and what a reload changes in them. Blocks without policy
// keys (tallow's own files) share tallow.conf's threshold and expires and one score per address,
// exactly as in tallow; a block with its own policy keeps its own scores (scoring: the tracker).
import { PatternError, type PatternFile } from './patterns';
import { POLICY_KEYS, type RuleKeys } from './rule-keys';
import type { Rule } from './rule';
import { scopeOf } from './scope';

/** A block of an enabled or disabled rule, with its rule. */
export interface RuleBlock extends PatternFile {
  rule: Rule;
}

export interface RuleSet {
  /** Every rule, enabled or not, in load order. */
  rules: Rule[];
  /** Every block that defines patterns (override blocks apart), with its rule, in load order. */
  blocks: RuleBlock[];
}

/** What tallow.conf gives the keys a rule leaves out. */
export interface RuleDefaults {
  threshold: number;
  /** seconds: the bantime */
  expires: number;
  /** the actions tallow.conf defines (a rule's `actions` must name them) and that file, for messages; absent: not checked */
  actions?: { names: string[]; file: string };
}

const show = (v: unknown) => JSON.stringify(v) ?? String(v);
const fail = (message: string): never => {
  throw new PatternError(message);
};
const at = (f: PatternFile) => `${f.path}: block ${f.block}`;
const place = (f: PatternFile) => `${f.path} (block ${f.block})`;

/** `sshd.json` -> `sshd`; `sshd#2` when the file has several blocks. */
export function defaultRuleName(f: PatternFile): string {
  const base = f.name.replace(/\.json$/, '');
  return f.blocks > 1 ? `${base}#${f.block}` : base;
}

interface Draft {
  name: string;
  blocks: PatternFile[];
  keys: RuleKeys;
  /** the block (definition or override) each key came from, for messages */
  from: Map<keyof RuleKeys, PatternFile>;
}

/** The keys that must agree between the blocks of one rule (unit is each block's own filter). */
const MERGED = ['enabled', 'no_log', ...POLICY_KEYS, 'action', 'notify_allowlisted', 'actions', 'publish'] as const;

/**
 * Blocks -> rules. Blocks sharing a `name` (in one file) are one rule, whose keys must agree; a
 * block with a `name` and no filter or items overrides the keys it gives of a rule defined
 * elsewhere. Throws PatternError (`file: block N: message`, exit 78).
 */
export function resolveRules(files: PatternFile[], defaults: RuleDefaults): RuleSet {
  const drafts = new Map<string, Draft>();
  for (const f of files) {
    if (f.override) continue;
    const name = f.keys.name ?? defaultRuleName(f);
    let d = drafts.get(name);
    if (d && d.blocks[0].path !== f.path) {
      fail(`${at(f)}: rule name "${name}" is already used by ${place(d.blocks[0])} (a name belongs to one file; ` +
        'to change that rule from another file, give its "name" and the keys to change, without "filter" or "items")');
    }
    if (!d) drafts.set(name, (d = { name, blocks: [], keys: {}, from: new Map() }));
    for (const key of MERGED) {
      const v = f.keys[key];
      if (v === undefined) continue;
      const other = d.from.get(key);
      if (other && show(d.keys[key]) !== show(v)) {
        fail(`${at(f)}: "${key}" is ${show(v)} here but ${show(d.keys[key])} in block ${other.block} (blocks named "${name}" are one rule: give it once, or the same value)`);
      }
      const twin = key === 'threshold' ? 'limit' : key === 'limit' ? 'threshold' : null;
      if (twin && d.from.has(twin)) fail(`${at(f)}: "${key}" here but "${twin}" in block ${d.from.get(twin)!.block} (blocks named "${name}" are one rule: give one of them once)`);
      (d.keys as Record<string, unknown>)[key] = v;
      d.from.set(key, f);
    }
    d.blocks.push(f);
  }
  applyOverrides(files, drafts);
  const byName = new Map<string, Rule>();
  for (const d of drafts.values()) byName.set(d.name, makeRule(d, defaults));
  // In load order, whatever their rules: the first matching block wins.
  const blocks = files.filter((f) => !f.override).map((f) => ({ ...f, rule: byName.get(f.keys.name ?? defaultRuleName(f))! }));
  return { rules: [...byName.values()], blocks };
}

/** Override blocks, in load order: each changes only the keys it gives; two may not disagree. */
function applyOverrides(files: PatternFile[], drafts: Map<string, Draft>): void {
  const by = new Map<string, Map<keyof RuleKeys, PatternFile>>();
  for (const f of files) {
    if (!f.override) continue;
    const name = f.keys.name!;
    const d = drafts.get(name);
    if (!d) fail(`${at(f)}: no rule named "${name}" to override (a block with a "name" and no "filter" or "items" changes a rule defined in another block)`);
    const seen = by.get(name) ?? new Map<keyof RuleKeys, PatternFile>();
    by.set(name, seen);
    for (const key of MERGED) {
      const v = f.keys[key];
      if (v === undefined) continue;
      const other = seen.get(key);
      if (other && show(other.keys[key]) !== show(v)) {
        fail(`${at(f)}: "${key}" is ${show(v)} here but ${show(other.keys[key])} in ${place(other)}: both override rule "${name}"`);
      }
      seen.set(key, f);
      // threshold and limit are one setting written two ways: the override's replaces the rule's.
      if (key === 'threshold') delete d!.keys.limit;
      if (key === 'limit') delete d!.keys.threshold;
      (d!.keys as Record<string, unknown>)[key] = v;
      d!.from.set(key, f);
    }
  }
}

function makeRule(d: Draft, defaults: RuleDefaults): Rule {
  const k = d.keys;
  const prefix = { 4: k.ban_prefix_v4 ?? 32, 6: k.ban_prefix_v6 ?? 128 };
  let scope;
  try {
    scope = scopeOf(k.ports === 'all' ? undefined : k.ports, k.protocol, prefix[4] < 32 || prefix[6] < 128);
  } catch (e) {
    const f = d.from.get('protocol') ?? d.from.get('ports') ?? d.blocks[0];
    return fail(`${at(f)}: ${(e as Error).message}`);
  }
  const action = k.action ?? 'ban';
  if (action === 'notify') {
    // An override may have given a notify rule policy keys: they would do nothing.
    const policy = POLICY_KEYS.find((key) => k[key] !== undefined);
    if (policy) return fail(`${at(d.from.get(policy)!)}: "${policy}": rule "${d.name}" has "action": "notify": it never scores or bans`);
  } else if (k.notify_allowlisted !== undefined) {
    return fail(`${at(d.from.get('notify_allowlisted')!)}: "notify_allowlisted": rule "${d.name}" is not a notify rule (give it "action": "notify")`);
  }
  const unknown = defaults.actions && k.actions?.find((n) => !defaults.actions!.names.includes(n));
  if (unknown) {
    const { names, file } = defaults.actions!;
    return fail(`${at(d.from.get('actions')!)}: "actions": rule "${d.name}": no action named "${unknown}" in ${file} (defined: ${names.join(', ') || 'none'}; define it with action.${unknown}.KEY=...)`);
  }
  return {
    name: d.name,
    ...(action === 'notify' ? { action, notifyAllowlisted: k.notify_allowlisted ?? true } : {}),
    ...(k.actions ? { actions: k.actions } : {}),
    pool: POLICY_KEYS.some((key) => k[key] !== undefined) ? d.name : '',
    enabled: k.enabled ?? true,
    noLog: k.no_log ?? false,
    ...(k.publish === false ? { publish: false as const } : {}),
    threshold: k.limit ?? k.threshold ?? defaults.threshold,
    findtime: k.findtime ?? 0,
    bantime: k.bantime ?? defaults.expires,
    scope,
    prefix,
    ...(k.bantime_increment ? { increment: k.bantime_increment } : {}),
    ...(k.bantime_max !== undefined ? { bantimeMax: k.bantime_max } : {}),
    ...(k.recidive_window !== undefined ? { recidiveWindow: k.recidive_window } : {}),
    where: place(d.blocks[0]),
  };
}

function portsText(r: Rule): string {
  if (r.scope.ports === null) return 'all';
  return r.scope.ports.join(',') + (r.scope.protocols.length === 1 ? `/${r.scope.protocols[0]}` : '');
}

/** What a reload changes in each rule's policy, in tallow.patterns(5)'s key names. */
function policyChanges(a: Rule, b: Rule): string[] {
  const out: string[] = [];
  const cmp = (key: string, x: string | number, y: string | number) => {
    if (x !== y) out.push(`${key} ${x} -> ${y}`);
  };
  cmp('action', a.action ?? 'ban', b.action ?? 'ban');
  cmp('threshold', a.threshold, b.threshold);
  cmp('findtime', a.findtime, b.findtime);
  cmp('bantime', a.bantime, b.bantime);
  cmp('ports', portsText(a), portsText(b));
  cmp('ban_prefix_v4', a.prefix[4], b.prefix[4]);
  cmp('ban_prefix_v6', a.prefix[6], b.prefix[6]);
  cmp('actions', a.actions ? `[${a.actions.join(',')}]` : 'actions=', b.actions ? `[${b.actions.join(',')}]` : 'actions=');
  const inc = (r: Rule) => (!r.increment ? 'tallow.conf' : r.increment.kind === 'list' ? r.increment.seconds.join(',') : r.increment.kind === 'factor' ? `x${r.increment.factor}` : 'off');
  cmp('bantime_increment', inc(a), inc(b));
  cmp('bantime_max', a.bantimeMax ?? 'tallow.conf', b.bantimeMax ?? 'tallow.conf');
  cmp('recidive_window', a.recidiveWindow ?? 'tallow.conf', b.recidiveWindow ?? 'tallow.conf');
  if ((a.pool === '') !== (b.pool === '')) out.push(a.pool === '' ? 'scores shared -> its own' : 'scores its own -> shared');
  return out;
}

/**
 * The log lines of a reload: rules added, removed, disabled, enabled, and policy changes. Removing
 * or disabling a rule unbans nothing: its bans run out by themselves, and the line says so.
 * `activeBans` counts a rule's active bans (the ledger's); without it the line gives no number.
 */
export function ruleChanges(before: Rule[], after: Rule[], activeBans?: (rule: Rule) => number): string[] {
  const stay = (r: Rule) => {
    if (!activeBans) return 'its active bans stay until they expire';
    const n = activeBans(r);
    return n === 0 ? 'it has no active bans' : `its ${n} active ban${n === 1 ? '' : 's'} stay${n === 1 ? 's' : ''} until ${n === 1 ? 'it expires' : 'they expire'}`;
  };
  const old = new Map(before.map((r) => [r.name, r]));
  const now = new Set(after.map((r) => r.name));
  const out: string[] = [];
  for (const r of after) {
    const o = old.get(r.name);
    if (!o) {
      out.push(`rule ${r.name} added${r.enabled ? '' : ' (disabled)'}: ${r.where}`);
      continue;
    }
    if (o.enabled && !r.enabled) out.push(`rule ${r.name} disabled: ${stay(o)}`);
    if (!o.enabled && r.enabled) out.push(`rule ${r.name} enabled`);
    const changes = policyChanges(o, r);
    if (changes.length) out.push(`rule ${r.name} policy changed: ${changes.join(', ')}`);
  }
  for (const o of before) if (!now.has(o.name)) out.push(`rule ${o.name} removed: ${stay(o)}`);
  return out;
}

