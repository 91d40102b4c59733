// nftables, native: a table of our own, `inet tallow`, with per scope and family one set (tallow's
// `tallow` (ipv4_addr) and `tallow6` (ipv6_addr); `tallow_p22`...; `flags interval` for scopes
// that ban networks) carrying per-element timeouts, and a chain hooked on input at priority -10,
// before the distributions' filter chains (priority 0), so an ACCEPT there cannot let a banned
// address through; one drop rule per set (with `th dport { ... }` for a scope with ports). Set-up is one `nft -f -` script; bans, unbans and re-fills go through one
// long-lived `nft -i`, where each line is one transaction.
import * as path from 'node:path';
import type { Family } from '../address';
import { ALL_PORTS, setName, type Scope } from '../scope';
import { RefusedError, type BackendModule, type BanEntry, type BanRemoval, type FirewallBackend, type FirewallSettings, type KernelBan, type Logger } from './backend';
import { CommandError, TOOL_TIMEOUT_MS as TIMEOUT_MS, executable, families, runOk } from './exec';
import { NftMonitor } from './monitor';
import { entryScope, scopeList, scopeMap, usableScopes } from './scopes';
import { ToolSession } from './session';
import { clampSeconds, validTarget } from './validate';

export const TABLE = 'tallow';
export const CHAIN = 'input';
/** tallow's own sets (scope ''). */
export const SET: Record<Family, string> = { 4: 'tallow', 6: 'tallow6' };
const ALL: readonly Scope[] = [ALL_PORTS];
const ADDR_TYPE: Record<Family, string> = { 4: 'ipv4_addr', 6: 'ipv6_addr' };
const PROTO: Record<Family, string> = { 4: 'ip', 6: 'ip6' };
/** Elements per statement: keeps each line of the script (and nft's parser state) of modest size. */
const CHUNK = 2000;

/**
 * The set-up script: only what `st` (the table as it is now, null when absent) lacks, so an
 * administrator's changes to an existing set or chain (size, priority) are left alone and one
 * `nft -f` does the whole set-up. With st null: the complete script. Per scope: its sets, then
 * (after the chain) its drop rules.
 */
export function setupScript(config: FirewallSettings, st: TableState | null = null, scopes: readonly Scope[] = scopeList(config.scopes)): string {
  const lines: string[] = [];
  if (!st) lines.push(`add table inet ${TABLE}`);
  const fams = families(config);
  for (const scope of scopes) {
    for (const f of fams) {
      const name = setName(f, scope);
      if (st?.sets.has(name)) continue;
      const flags = scope.net ? 'interval,timeout' : 'timeout';
      lines.push(`add set inet ${TABLE} ${name} { type ${ADDR_TYPE[f]}; flags ${flags}; size ${config.maxelem}; timeout ${config.expires}s; }`);
    }
  }
  if (!st?.chain) lines.push(`add chain inet ${TABLE} ${CHAIN} { type filter hook input priority -10; policy accept; }`);
  for (const scope of scopes) for (const f of fams) if (!st?.rules.has(setName(f, scope))) lines.push(ruleText(f, scope));
  return lines.length ? lines.join('\n') + '\n' : '';
}

/** A scope's ports as nft matches: `th dport { 22, 8000-8080 }` for TCP and UDP, `tcp dport { ... }` for one. */
function portMatch(scope: Scope): string {
  if (!scope.ports) return '';
  const ports = `{ ${scope.ports.join(', ')} }`;
  if (scope.protocols.length === 1) return `${scope.protocols[0]} dport ${ports} `;
  return `meta l4proto { ${scope.protocols.join(', ')} } th dport ${ports} `;
}

export function ruleText(f: Family, scope: Scope = ALL_PORTS): string {
  return `add rule inet ${TABLE} ${CHAIN} ${portMatch(scope)}${PROTO[f]} saddr @${setName(f, scope)} drop`;
}

function chunks<T>(items: T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += CHUNK) out.push(items.slice(i, i + CHUNK));
  return out;
}

/**
 * One script for a whole batch, one line per chunk of one set: each line is one transaction in
 * `nft -i`. To refresh the timeout of an element already present (older kernels keep the old one
 * on `add`), each added element goes through add (so it exists), delete, add-with-timeout, all on
 * one line; removals are add-then-delete so an absent element is not an error. Entries of scopes
 * not held, or addresses their set cannot hold, are left out.
 */
export function batchScript(add: BanEntry[], remove: BanRemoval[], fams: Family[], scopes: readonly Scope[] = ALL): string {
  const lines: string[] = [];
  const byId = scopeMap(scopes);
  const fits = (e: { address: string; family: Family; scope?: string }, scope: Scope, f: Family) =>
    e.family === f && entryScope(e) === scope.id && validTarget(e.address, f, scope.net);
  for (const scope of byId.values()) {
    for (const f of fams) {
      const adds: { address: string; seconds: number }[] = [];
      for (const e of add) {
        const seconds = clampSeconds(e.seconds);
        if (fits(e, scope, f) && seconds !== null) adds.push({ address: e.address, seconds });
      }
      const dels = remove.filter((e) => fits(e, scope, f)).map((e) => e.address);
      const target = `inet ${TABLE} ${setName(f, scope)}`;
      for (const c of chunks(adds)) {
        const bare = c.map((e) => e.address).join(', ');
        const timed = c.map((e) => `${e.address} timeout ${e.seconds}s`).join(', ');
        lines.push(`add element ${target} { ${bare} }; delete element ${target} { ${bare} }; add element ${target} { ${timed} }`);
      }
      for (const c of chunks(dels)) {
        const bare = c.join(', ');
        lines.push(`add element ${target} { ${bare} }; delete element ${target} { ${bare} }`);
      }
    }
  }
  return lines.length ? lines.join('\n') + '\n' : '';
}

type NftObject = Record<string, any>;

/** Does this rule (from `nft -j`) read `[PORTS] PROTO saddr @SET drop` for this scope's set? */
export function isDropRule(rule: NftObject, f: Family, scope: Scope = ALL_PORTS): boolean {
  const expr: NftObject[] = Array.isArray(rule.expr) ? rule.expr : [];
  const set = `@${setName(f, scope)}`;
  const matches = expr.some((e) => {
    const m = e && e.match;
    const p = m && m.left && m.left.payload;
    return m && m.op === '==' && p && p.protocol === PROTO[f] && p.field === 'saddr' && m.right === set;
  });
  // The set's name says which ports; a port match only tells tallow's every-port rule from a scope's.
  const ports = expr.some((e) => e && e.match && e.match.left && e.match.left.payload && e.match.left.payload.field === 'dport');
  return matches && ports === (scope.ports !== null) && expr.some((e) => e && 'drop' in e);
}

export interface TableState {
  sets: Set<string>;
  /** Names of the sets whose drop rule is in our chain. */
  rules: Set<string>;
  chain: boolean;
}

export function parseTable(json: string, scopes: readonly Scope[] = ALL): TableState {
  const state: TableState = { sets: new Set(), rules: new Set(), chain: false };
  const doc = JSON.parse(json) as { nftables?: NftObject[] };
  for (const o of doc.nftables ?? []) {
    if (o.set && o.set.table === TABLE && o.set.family === 'inet') state.sets.add(o.set.name);
    if (o.chain && o.chain.table === TABLE && o.chain.name === CHAIN && o.chain.hook === 'input') state.chain = true;
    if (o.rule && o.rule.table === TABLE && o.rule.chain === CHAIN) {
      for (const scope of scopes) for (const f of [4, 6] as Family[]) if (isDropRule(o.rule, f, scope)) state.rules.add(setName(f, scope));
    }
  }
  return state;
}

/** An element's value as text: an address, or a network (`{prefix: {addr, len}}`) in CIDR text. */
function elementText(val: unknown): unknown {
  const p = val && typeof val === 'object' ? (val as NftObject).prefix : undefined;
  return p && typeof p.addr === 'string' && typeof p.len === 'number' ? `${p.addr}/${p.len}` : val;
}

export function parseSetElements(json: string, f: Family, scope: Scope = ALL_PORTS): KernelBan[] {
  const out: KernelBan[] = [];
  const name = setName(f, scope);
  const doc = JSON.parse(json) as { nftables?: NftObject[] };
  for (const o of doc.nftables ?? []) {
    if (!o.set || o.set.name !== name) continue;
    for (const el of o.set.elem ?? []) {
      // An element is a bare value, or {elem: {val, timeout, expires}} when it has a timeout; a
      // value is an address, or {prefix} for a network in an interval set.
      const val = elementText(el && el.elem ? el.elem.val : el);
      if (!validTarget(val, f, scope.net)) continue;
      const expires = el && el.elem && typeof el.elem.expires === 'number' ? el.elem.expires : Infinity;
      out.push({ address: val, family: f, remaining: expires, scope: scope.id });
    }
  }
  return out;
}

/** Sentinel: a bare word is a syntax error that nft prints with the offending line. */
export function nftSession(nft: string): ToolSession {
  return new ToolSession([nft, '-i'], { sentinel: (tag) => tag }, TIMEOUT_MS);
}

class NftablesBackend implements FirewallBackend {
  readonly name = 'nftables';
  private readonly fams: Family[];
  private readonly nft: string;
  readonly session: ToolSession;
  private monitor: NftMonitor | null = null;
  scopes: readonly Scope[];

  constructor(
    private readonly config: FirewallSettings,
    private readonly log: Logger,
  ) {
    this.fams = families(config);
    this.scopes = scopeList(config.scopes);
    this.nft = path.join(config.nftPath, 'nft');
    this.session = nftSession(this.nft);
  }

  private names(scopes: readonly Scope[]): string[] {
    return scopes.flatMap((s) => this.fams.map((f) => setName(f, s)));
  }

  describe(): string {
    const how = this.config.nocreate
      ? 'nocreate: using the table the administrator made'
      : `timeout ${this.config.expires}s size ${this.config.maxelem}, drop rules in chain ${CHAIN} hooked on input priority -10`;
    return `nftables table inet ${TABLE}, sets ${this.names(this.scopes).join(', ')} (${how}) with ${this.nft}`;
  }

  private async state(scopes: readonly Scope[] = this.scopes): Promise<TableState | null> {
    // `-t list ruleset`: tables, sets, chains and rules without set elements, 0.02 s at 200,000
    // elements, where `list table` and `list chain` (even with -t) read every element: 3.7 s
    // at 200,000, 49 s at 1,000,000 (measured), every check.
    const r = await runOk([this.nft, '-t', '-j', 'list', 'ruleset'], { timeoutMs: TIMEOUT_MS });
    const doc = JSON.parse(r.stdout) as { nftables?: NftObject[] };
    if (!(doc.nftables ?? []).some((o) => o.table && o.table.family === 'inet' && o.table.name === TABLE)) return null;
    return parseTable(r.stdout, scopes);
  }

  async setup(): Promise<void> {
    this.scopes = await this.setupScopes(this.scopes);
  }

  async setScopes(scopes: Scope[]): Promise<void> {
    const added = scopeList(this.scopes, scopes).slice(this.scopes.length);
    if (added.length) this.scopes = [...this.scopes, ...(await this.setupScopes(added))];
  }

  /** Sets and rules of these scopes made where missing; the scopes usable now (nocreate: those whose sets exist). */
  private async setupScopes(scopes: readonly Scope[]): Promise<Scope[]> {
    if (this.config.nocreate) {
      const st = await this.state(scopes);
      return usableScopes(scopes, this.fams, (n) => !!st && st.sets.has(n), this.log, `nftables set (table inet ${TABLE})`);
    }
    const script = setupScript(this.config, await this.state(scopes), scopes);
    if (script) {
      await runOk([this.nft, '-f', '-'], { input: script, timeoutMs: TIMEOUT_MS });
      this.log.info('nftables set-up done', { table: `inet ${TABLE}`, added: String(script.trim().split('\n').length) });
    }
    return [...scopes];
  }

  async check(): Promise<boolean> {
    const st = await this.state();
    if (!st) return false;
    const names = this.names(this.scopes);
    if (!names.every((n) => st.sets.has(n))) return false;
    if (this.config.nocreate) return true;
    return st.chain && names.every((n) => st.rules.has(n));
  }

  async apply(add: BanEntry[], remove: BanRemoval[]): Promise<void> {
    const script = batchScript(add, remove, this.fams, this.scopes);
    if (!script) return;
    const errors = await this.session.exec(script.trimEnd().split('\n'));
    if (!errors) return;
    const first = errors.split('\n').filter((l) => l.startsWith('Error:')).join(' | ') || errors.split('\n')[0];
    // Every line adds before it deletes, so "No such file" means the table or set is gone.
    if (/No such file or directory/.test(first)) throw new CommandError(`nft: ${first}`, [this.nft, '-i'], null);
    throw new RefusedError(`nft refused: ${first}`);
  }

  // No present(): `get element` makes nft fetch the whole set (456 ms of CPU per lookup at 100,000
  // elements, measured), so a probe would cost more than it saves. A reload or `nft flush ruleset`
  // deletes our rule and wakes the monitor; a set flushed by hand waits for the 30 s check.

  async watch(changed: () => void): Promise<boolean> {
    this.monitor = NftMonitor.start(changed, this.log);
    return this.monitor !== null;
  }

  async close(): Promise<void> {
    this.monitor?.close();
    await this.session.close();
  }

  async list(): Promise<KernelBan[]> {
    const out: KernelBan[] = [];
    for (const scope of this.scopes) {
      for (const f of this.fams) {
        const r = await runOk([this.nft, '-j', 'list', 'set', 'inet', TABLE, setName(f, scope)], { timeoutMs: TIMEOUT_MS });
        for (const b of parseSetElements(r.stdout, f, scope)) out.push(b); // not push(...): a million overflow the stack
      }
    }
    return out;
  }
}

export const nftablesBackend: BackendModule = {
  name: 'nftables',
  restartKeys: ['nftPath'],
  unavailableWhy: (config) => `${config.nftPath}/nft is missing`,
  available(config) {
    return executable(path.join(config.nftPath, 'nft'));
  },
  create(config, log) {
    return new NftablesBackend(config, log);
  },
};
