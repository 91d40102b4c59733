// ipset + iptables/ip6tables, tallow's own backend: per scope and family one set (tallow's
// `tallow` / `tallow6`: hash:ip with a default timeout; `tallow_p22`...; hash:net for scopes that
// ban networks) and one DROP rule at the top of INPUT (per protocol for a scope with ports). Sets
// are never destroyed, so bans survive a restart of the daemon. Bans, unbans and re-fills go
// through one long-lived `ipset -` (interactive mode: one line per element, a refused line does
// not stop the next).
import * as path from 'node:path';
import type { Family } from '../address';
import { ALL_PORTS, setName, type Scope } from '../scope';
import { RefusedError, type BackendModule, type BanEntry, type BanRemoval, type FirewallBackend, type FirewallSettings, type KernelBan, type Logger } from './backend';
import { CommandError, TOOL_TIMEOUT_MS as TIMEOUT_MS, executable, families, run, runOk } from './exec';
import { ToolSession } from './session';
import { NftMonitor, iptablesIsNft } from './monitor';
import { entryScope, scopeList, scopeMap, usableScopes } from './scopes';
import { clampSeconds, validTarget } from './validate';

/** tallow's own sets (scope ''). */
export const SET_NAME: Record<Family, string> = { 4: 'tallow', 6: 'tallow6' };

const ALL: readonly Scope[] = [ALL_PORTS];

/** The set type of a scope: networks need hash:net. */
export function setType(scope: Scope): string {
  return scope.net ? 'hash:net' : 'hash:ip';
}

/**
 * The iptables matches of a scope's DROP rule(s), after the chain name: every port as tallow has
 * it, else one rule per protocol with multiport (`22,8000:8080`). Shared with firewalld.
 */
export function dropMatches(f: Family, scope: Scope): string[][] {
  const set = ['-m', 'set', '--match-set', setName(f, scope), 'src', '-j', 'DROP'];
  if (!scope.ports) return [set];
  const ports = scope.ports.map((p) => p.replace('-', ':')).join(',');
  return scope.protocols.map((p) => ['-p', p, '-m', 'multiport', '--dports', ports, ...set]);
}

/**
 * Which of these rules (iptables matches) are in one of `chains`: one `iptables -S` read as text,
 * and `-C` only for a rule not found that way (its text may print differently), so a check costs
 * one process per family however many scopes, and a difference in printing never reads as missing.
 */
export async function rulesPresent(ipt: string, chains: string[], rules: string[][]): Promise<boolean[]> {
  const listed = await run([ipt, '-w', '-S'], { timeoutMs: TIMEOUT_MS });
  const lines = new Set(listed.code === 0 ? listed.stdout.split('\n').map((l) => l.trim()) : []);
  const out: boolean[] = [];
  for (const m of rules) {
    let found = chains.some((c) => lines.has(`-A ${c} ${m.join(' ')}`));
    for (let i = 0; !found && i < chains.length; i++) found = (await run([ipt, '-w', '-C', chains[i], ...m], { timeoutMs: TIMEOUT_MS })).code === 0;
    out.push(found);
  }
  return out;
}

/** The entry's set name, or null when its scope is not held or the address does not fit it. */
function target(e: { address: string; family: Family; scope?: string }, fams: Family[], scopes: Map<string, Scope>): string | null {
  const scope = scopes.get(entryScope(e));
  if (!scope || !fams.includes(e.family) || !validTarget(e.address, e.family, scope.net)) return null;
  return setName(e.family, scope);
}

/** The `ipset restore` script for a batch: `add` refreshes the timeout thanks to -exist, `del` of an absent entry is ignored. */
export function restoreScript(add: BanEntry[], remove: BanRemoval[], fams: Family[], scopes: readonly Scope[] = ALL): string {
  const byId = scopeMap(scopes);
  const lines: string[] = [];
  for (const e of add) {
    const seconds = clampSeconds(e.seconds);
    const set = target(e, fams, byId);
    if (set && seconds !== null) lines.push(`add ${set} ${e.address} timeout ${seconds}`);
  }
  for (const e of remove) {
    const set = target(e, fams, byId);
    if (set) lines.push(`del ${set} ${e.address}`);
  }
  return lines.length ? lines.join('\n') + '\n' : '';
}

/** Parses `ipset list -o save NAME` output into bans of this scope's set. */
export function parseSave(text: string, family: Family, scope: Scope = ALL_PORTS): KernelBan[] {
  const out: KernelBan[] = [];
  const name = setName(family, scope);
  for (const line of text.split('\n')) {
    const w = line.trim().split(/\s+/);
    if (w[0] !== 'add' || w[1] !== name || !validTarget(w[2], family, scope.net)) continue;
    const t = w.indexOf('timeout');
    out.push({ address: w[2], family, remaining: t > 0 ? Number(w[t + 1]) : Infinity, scope: scope.id });
  }
  return out;
}

/** `ipset -` kept running; the sentinel `-o TAG` is refused with "unknown output mode 'TAG'". */
export function ipsetSession(ipset: string): ToolSession {
  return new ToolSession([ipset, '-'], { sentinel: (tag) => `-o ${tag}` }, TIMEOUT_MS);
}

/** Errors that say the set itself is missing or the kernel is unusable: the whole batch failed. */
const SET_FAILURE = /set with the given name does not exist|Kernel error|Cannot open session|Kernel support protocol/i;

/**
 * Sends a batch through the session. Lines that the kernel refuses (an element a set cannot
 * hold) make a RefusedError; a missing set a CommandError. Shared with firewalld.
 */
export async function ipsetApply(session: ToolSession, add: BanEntry[], remove: BanRemoval[], fams: Family[], scopes: readonly Scope[] = ALL): Promise<void> {
  const script = restoreScript(add, remove, fams, scopes);
  if (!script) return;
  const lines = script.trimEnd().split('\n').map((l) => `${l} -exist`);
  const errors = (await session.exec(lines)).split('\n').filter((l) => l.trim() && !l.startsWith('Warning:')).join(' | ');
  if (!errors) return;
  if (SET_FAILURE.test(errors)) throw new CommandError(`ipset: ${errors}`, ['ipset', '-'], null);
  throw new RefusedError(`ipset refused: ${errors}`);
}

/** Is each address in its scope's set? Through the session: `test` answers on stderr, one line each. */
export async function ipsetPresent(session: ToolSession, sample: BanRemoval[], scopes: readonly Scope[] = ALL): Promise<boolean[]> {
  const byId = scopeMap(scopes);
  const sets = sample.map((s) => target(s, [4, 6], byId));
  const lines = sample.flatMap((s, i) => (sets[i] ? [`test ${sets[i]} ${s.address}`] : []));
  if (lines.length === 0) return sample.map(() => false);
  const text = await session.exec(lines);
  const yes = new Set<string>();
  for (const line of text.split('\n')) {
    const m = /^(?:Warning: )?(\S+) is in set (\S+)\.$/.exec(line.trim());
    if (m) yes.add(`${m[2]} ${m[1]}`);
  }
  return sample.map((s, i) => sets[i] !== null && yes.has(`${sets[i]} ${s.address}`));
}

export async function ipsetNames(ipset: string): Promise<Set<string>> {
  const r = await runOk([ipset, 'list', '-n'], { timeoutMs: TIMEOUT_MS });
  return new Set(r.stdout.split('\n').map((l) => l.trim()).filter(Boolean));
}

export async function ipsetList(ipset: string, fams: Family[], scopes: readonly Scope[] = ALL): Promise<KernelBan[]> {
  const out: KernelBan[] = [];
  for (const scope of scopes) {
    for (const f of fams) {
      const r = await runOk([ipset, 'list', '-o', 'save', setName(f, scope)], { timeoutMs: TIMEOUT_MS });
      // Not push(...): a spread of a million elements overflows the stack.
      for (const b of parseSave(r.stdout, f, scope)) out.push(b);
    }
  }
  return out;
}

/** The `ipset create` argv of a scope's set (with -exist: an identical set is no error). */
export function createArgv(ipset: string, f: Family, scope: Scope, config: FirewallSettings): string[] {
  return [ipset, 'create', setName(f, scope), setType(scope), 'family', f === 4 ? 'inet' : 'inet6',
    'timeout', String(config.expires), 'maxelem', String(config.maxelem), '-exist'];
}

/**
 * Creates each scope's sets if missing. -exist only forgives an identical set; one made earlier
 * with other parameters (e.g. by tallow-C, or another maxelem) is kept as it is rather than
 * destroyed with its bans. Shared with nothing: firewalld makes its ipsets itself.
 */
async function createSets(ipset: string, fams: Family[], scopes: readonly Scope[], config: FirewallSettings, log: Logger): Promise<void> {
  for (const scope of scopes) {
    for (const f of fams) {
      const argv = createArgv(ipset, f, scope, config);
      const r = await run(argv, { timeoutMs: TIMEOUT_MS });
      if (r.code === 0) continue;
      const names = await ipsetNames(ipset);
      if (!names.has(setName(f, scope))) throw new CommandError(`${argv.join(' ')}: exit status ${r.code}: ${r.stderr.trim()}`, argv, r);
      log.warn('existing ipset set has other parameters than configured; keeping it as it is', { set: setName(f, scope), error: r.stderr.trim() });
    }
  }
}

class IpsetBackend implements FirewallBackend {
  readonly name = 'ipset';
  private readonly fams: Family[];
  readonly session: ToolSession;
  private monitor: NftMonitor | null = null;
  scopes: readonly Scope[];

  constructor(
    private readonly config: FirewallSettings,
    private readonly log: Logger,
  ) {
    this.fams = families(config);
    this.scopes = scopeList(config.scopes);
    this.session = ipsetSession(this.tool('ipset'));
  }

  private tool(name: string): string {
    return path.join(this.config.iptPath, name);
  }

  private iptables(f: Family): string {
    return this.tool(f === 4 ? 'iptables' : 'ip6tables');
  }

  /** Every DROP rule of these scopes: [family, matches after the chain]. */
  private rules(scopes: readonly Scope[]): [Family, string[]][] {
    return scopes.flatMap((s) => this.fams.flatMap((f) => dropMatches(f, s).map((m): [Family, string[]] => [f, m])));
  }

  describe(): string {
    const sets = this.scopes.flatMap((s) => this.fams.map((f) => setName(f, s))).join(', ');
    const tools = this.fams.map((f) => (f === 4 ? 'iptables' : 'ip6tables')).join('/');
    const how = this.config.nocreate
      ? 'nocreate: using the sets and rules the administrator made'
      : `hash:ip (hash:net for networks) timeout ${this.config.expires} maxelem ${this.config.maxelem}, DROP rules at the top of INPUT (${tools})`;
    return `ipset sets ${sets} (${how}) with tools from ${this.config.iptPath}`;
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
    const ipset = this.tool('ipset');
    if (this.config.nocreate) {
      const names = await ipsetNames(ipset);
      return usableScopes(scopes, this.fams, (n) => names.has(n), this.log, 'ipset set');
    }
    await createSets(ipset, this.fams, scopes, this.config, this.log);
    for (const f of this.fams) {
      const ipt = this.iptables(f);
      const rules = this.rules(scopes).filter(([g]) => g === f).map(([, m]) => m);
      const present = await rulesPresent(ipt, ['INPUT'], rules);
      for (const [i, m] of rules.entries()) {
        if (present[i]) continue;
        await runOk([ipt, '-w', '-I', 'INPUT', '1', ...m], { timeoutMs: TIMEOUT_MS });
        this.log.info('inserted DROP rule at the top of INPUT', { tool: path.basename(ipt), set: m[m.indexOf('--match-set') + 1], rule: m.join(' ') });
      }
    }
    return [...scopes];
  }

  async check(): Promise<boolean> {
    const names = await ipsetNames(this.tool('ipset'));
    for (const s of this.scopes) for (const f of this.fams) if (!names.has(setName(f, s))) return false;
    // With nocreate the rules are the administrator's business (they may live elsewhere than INPUT).
    if (this.config.nocreate) return true;
    for (const f of this.fams) {
      const rules = this.rules(this.scopes).filter(([g]) => g === f).map(([, m]) => m);
      if (!(await rulesPresent(this.iptables(f), ['INPUT'], rules)).every(Boolean)) return false;
    }
    return true;
  }

  apply(add: BanEntry[], remove: BanRemoval[]): Promise<void> {
    return ipsetApply(this.session, add, remove, this.fams, this.scopes);
  }

  list(): Promise<KernelBan[]> {
    return ipsetList(this.tool('ipset'), this.fams, this.scopes);
  }

  present(sample: BanRemoval[]): Promise<boolean[]> {
    return ipsetPresent(this.session, sample, this.scopes);
  }

  async watch(changed: () => void): Promise<boolean> {
    // iptables-nft rules are nftables rules: the kernel reports their deletion (monitor.ts).
    this.monitor = NftMonitor.start(changed, this.log);
    return this.monitor !== null && (await iptablesIsNft(this.iptables(4)));
  }

  async close(): Promise<void> {
    this.monitor?.close();
    await this.session.close();
  }
}

export const ipsetBackend: BackendModule = {
  name: 'ipset',
  restartKeys: ['iptPath'],
  unavailableWhy: (config) => `${config.iptPath}/ipset or ${config.iptPath}/iptables is missing`,
  async available(config) {
    return (await executable(path.join(config.iptPath, 'ipset'))) && (await executable(path.join(config.iptPath, 'iptables')));
  },
  create(config, log) {
    return new IpsetBackend(config, log);
  },
};
