// ipset + iptables/ip6tables, tallow's own backend: sets `tallow` / `tallow6` (hash:ip with a
// default timeout) and one DROP rule at the top of INPUT per family. Sets are never destroyed, so
// bans survive a restart of the daemon. Bans, unbans and re-fills go through one long-lived
// `ipset -` (interactive mode: one line per element, a refused line does not stop the next).
import * as path from 'node:path';
import type { Family } from '../address';
import { RefusedError, type BackendModule, type BanEntry, type FirewallBackend, type FirewallSettings, type KernelBan, type Logger } from './backend';
import { CommandError, TOOL_TIMEOUT_MS as TIMEOUT_MS, executable, families, run, runOk } from './exec';
import { ToolSession } from './session';
import { NftMonitor, iptablesIsNft } from './monitor';
import { clampSeconds, validAddress } from './validate';

export const SET_NAME: Record<Family, string> = { 4: 'tallow', 6: 'tallow6' };

/** The `ipset restore` script for a batch: `add` refreshes the timeout thanks to -exist, `del` of an absent entry is ignored. */
export function restoreScript(add: BanEntry[], remove: { address: string; family: Family }[], fams: Family[]): string {
  const lines: string[] = [];
  for (const e of add) {
    const seconds = clampSeconds(e.seconds);
    if (!fams.includes(e.family) || !validAddress(e.address, e.family) || seconds === null) continue;
    lines.push(`add ${SET_NAME[e.family]} ${e.address} timeout ${seconds}`);
  }
  for (const e of remove) {
    if (!fams.includes(e.family) || !validAddress(e.address, e.family)) continue;
    lines.push(`del ${SET_NAME[e.family]} ${e.address}`);
  }
  return lines.length ? lines.join('\n') + '\n' : '';
}

/** Parses `ipset list -o save NAME` output into bans. */
export function parseSave(text: string, family: Family): KernelBan[] {
  const out: KernelBan[] = [];
  const name = SET_NAME[family];
  for (const line of text.split('\n')) {
    const w = line.trim().split(/\s+/);
    if (w[0] !== 'add' || w[1] !== name || !validAddress(w[2], family)) continue;
    const t = w.indexOf('timeout');
    out.push({ address: w[2], family, remaining: t > 0 ? Number(w[t + 1]) : Infinity });
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
export async function ipsetApply(session: ToolSession, add: BanEntry[], remove: { address: string; family: Family }[], fams: Family[]): Promise<void> {
  const script = restoreScript(add, remove, fams);
  if (!script) return;
  const lines = script.trimEnd().split('\n').map((l) => `${l} -exist`);
  const errors = (await session.exec(lines)).split('\n').filter((l) => l.trim() && !l.startsWith('Warning:')).join(' | ');
  if (!errors) return;
  if (SET_FAILURE.test(errors)) throw new CommandError(`ipset: ${errors}`, ['ipset', '-'], null);
  throw new RefusedError(`ipset refused: ${errors}`);
}

/** Is each address in our set? Through the session: `test` answers on stderr, one line each. */
export async function ipsetPresent(session: ToolSession, sample: { address: string; family: Family }[]): Promise<boolean[]> {
  const ok = sample.filter((s) => validAddress(s.address, s.family));
  if (ok.length === 0) return sample.map(() => false);
  const text = await session.exec(ok.map((s) => `test ${SET_NAME[s.family]} ${s.address}`));
  const yes = new Set<string>();
  for (const line of text.split('\n')) {
    const m = /^(?:Warning: )?(\S+) is in set (\S+)\.$/.exec(line.trim());
    if (m) yes.add(`${m[2]} ${m[1]}`);
  }
  return sample.map((s) => yes.has(`${SET_NAME[s.family]} ${s.address}`));
}

export async function ipsetNames(ipset: string): Promise<Set<string>> {
  const r = await runOk([ipset, 'list', '-n'], { timeoutMs: TIMEOUT_MS });
  return new Set(r.stdout.split('\n').map((l) => l.trim()).filter(Boolean));
}

export async function ipsetList(ipset: string, fams: Family[]): Promise<KernelBan[]> {
  const out: KernelBan[] = [];
  for (const f of fams) {
    const r = await runOk([ipset, 'list', '-o', 'save', SET_NAME[f]], { timeoutMs: TIMEOUT_MS });
    // Not push(...): a spread of a million elements overflows the stack.
    for (const b of parseSave(r.stdout, f)) out.push(b);
  }
  return out;
}

class IpsetBackend implements FirewallBackend {
  readonly name = 'ipset';
  private readonly fams: Family[];
  readonly session: ToolSession;
  private monitor: NftMonitor | null = null;

  constructor(
    private readonly config: FirewallSettings,
    private readonly log: Logger,
  ) {
    this.fams = families(config);
    this.session = ipsetSession(this.tool('ipset'));
  }

  private tool(name: string): string {
    return path.join(this.config.iptPath, name);
  }

  private iptables(f: Family): string {
    return this.tool(f === 4 ? 'iptables' : 'ip6tables');
  }

  private rule(f: Family): string[] {
    return ['INPUT', '-m', 'set', '--match-set', SET_NAME[f], 'src', '-j', 'DROP'];
  }

  describe(): string {
    const sets = this.fams.map((f) => SET_NAME[f]).join(', ');
    const tools = this.fams.map((f) => (f === 4 ? 'iptables' : 'ip6tables')).join('/');
    const how = this.config.nocreate
      ? 'nocreate: using the sets and rules the administrator made'
      : `hash:ip timeout ${this.config.expires} maxelem ${this.config.maxelem}, DROP rule at the top of INPUT (${tools})`;
    return `ipset sets ${sets} (${how}) with tools from ${this.config.iptPath}`;
  }

  async setup(): Promise<void> {
    const ipset = this.tool('ipset');
    if (this.config.nocreate) {
      const names = await ipsetNames(ipset);
      for (const f of this.fams) {
        if (!names.has(SET_NAME[f])) this.log.warn('nocreate=1 but the ipset set is missing: bans will fail until it exists', { set: SET_NAME[f] });
      }
      return;
    }
    for (const f of this.fams) {
      const argv = [ipset, 'create', SET_NAME[f], 'hash:ip', 'family', f === 4 ? 'inet' : 'inet6',
        'timeout', String(this.config.expires), 'maxelem', String(this.config.maxelem), '-exist'];
      const r = await run(argv, { timeoutMs: TIMEOUT_MS });
      if (r.code !== 0) {
        // -exist only forgives an identical set; one made earlier with other parameters (e.g. by
        // tallow-C, or another maxelem) is kept as it is rather than destroyed with its bans.
        const names = await ipsetNames(ipset);
        if (!names.has(SET_NAME[f])) throw new CommandError(`${argv.join(' ')}: exit status ${r.code}: ${r.stderr.trim()}`, argv, r);
        this.log.warn('existing ipset set has other parameters than configured; keeping it as it is', { set: SET_NAME[f], error: r.stderr.trim() });
      }
    }
    for (const f of this.fams) {
      const ipt = this.iptables(f);
      const check = await run([ipt, '-w', '-C', ...this.rule(f)], { timeoutMs: TIMEOUT_MS });
      if (check.code === 0) continue;
      await runOk([ipt, '-w', '-I', 'INPUT', '1', ...this.rule(f).slice(1)], { timeoutMs: TIMEOUT_MS });
      this.log.info('inserted DROP rule at the top of INPUT', { tool: path.basename(ipt), set: SET_NAME[f] });
    }
  }

  async check(): Promise<boolean> {
    const names = await ipsetNames(this.tool('ipset'));
    for (const f of this.fams) if (!names.has(SET_NAME[f])) return false;
    // With nocreate the rules are the administrator's business (they may live elsewhere than INPUT).
    if (this.config.nocreate) return true;
    for (const f of this.fams) {
      const r = await run([this.iptables(f), '-w', '-C', ...this.rule(f)], { timeoutMs: TIMEOUT_MS });
      if (r.code !== 0) return false;
    }
    return true;
  }

  apply(add: BanEntry[], remove: { address: string; family: Family }[]): Promise<void> {
    return ipsetApply(this.session, add, remove, this.fams);
  }

  list(): Promise<KernelBan[]> {
    return ipsetList(this.tool('ipset'), this.fams);
  }

  present(sample: { address: string; family: Family }[]): Promise<boolean[]> {
    return ipsetPresent(this.session, sample);
  }

  async watch(changed: () => void): Promise<boolean> {
    // iptables-nft rules are nftables rules: a reload deletes them and nft monitor says so.
    this.monitor = NftMonitor.start(this.config.nftPath, changed, this.log);
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
