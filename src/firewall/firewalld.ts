// firewalld, chosen when `firewall-cmd --state` says running: firewalld owns the sets and rules,
// made permanent (per scope and family an ipset, `tallow`/`tallow6`, `tallow_p22`..., with a
// timeout option, and direct rules with the ipset backend's matches, `-m set --match-set tallow
// src -j DROP` at the top of INPUT) and loaded with one reload.
//
// Bans go into the kernel ipsets through one long-lived `ipset -` (as the ipset backend). Checked for real
// with firewalld 1.3 on Debian 12 (FirewallBackend=nftables): firewalld then creates BOTH an nft
// set in `table inet firewalld` (flags interval, no timeout, unused by us) and the kernel ipset
// with our timeout/maxelem, and the direct rule (iptables-nft, `xt match set`) matches the kernel
// ipset; so the kernel ipset is the one that drops packets under either firewalld backend.
// A `firewall-cmd --reload` empties that ipset: its rule deletions wake the monitor (and the
// queue's probe of a few bans every 2 s notices an emptied set), and the queue re-fills.
import * as path from 'node:path';
import type { Family } from '../address';
import { setName, type Scope } from '../scope';
import type { BackendModule, BanEntry, BanRemoval, FirewallBackend, FirewallSettings, KernelBan, Logger } from './backend';
import { TOOL_TIMEOUT_MS as TIMEOUT_MS, families, run, runOk } from './exec';
import { dropMatches, rulesPresent, ipsetApply, ipsetList, ipsetNames, ipsetPresent, ipsetSession, setType } from './ipset';
import { NftMonitor, iptablesIsNft } from './monitor';
import { scopeList, usableScopes } from './scopes';
import type { ToolSession } from './session';

const IPV: Record<Family, string> = { 4: 'ipv4', 6: 'ipv6' };

class FirewalldBackend implements FirewallBackend {
  readonly name = 'firewalld';
  private readonly fams: Family[];
  private readonly fwcmd: string;
  private readonly ipset: string;
  readonly session: ToolSession;
  private monitor: NftMonitor | null = null;
  scopes: readonly Scope[];

  constructor(
    private readonly config: FirewallSettings,
    private readonly log: Logger,
  ) {
    this.fams = families(config);
    this.scopes = scopeList(config.scopes);
    this.fwcmd = path.join(config.fwcmdPath, 'firewall-cmd');
    this.ipset = path.join(config.iptPath, 'ipset');
    this.session = ipsetSession(this.ipset);
  }

  private names(scopes: readonly Scope[]): string[] {
    return scopes.flatMap((s) => this.fams.map((f) => setName(f, s)));
  }

  /** Every DROP rule of these scopes: [family, iptables matches]. */
  private rules(scopes: readonly Scope[]): [Family, string[]][] {
    return scopes.flatMap((s) => this.fams.flatMap((f) => dropMatches(f, s).map((m): [Family, string[]] => [f, m])));
  }

  /** The direct rule's argv: `ipv4 filter INPUT 1 <matches>`. */
  private direct(f: Family, m: string[]): string[] {
    return [IPV[f], 'filter', 'INPUT', '1', ...m];
  }

  describe(): string {
    const how = this.config.nocreate
      ? 'nocreate: using the ipsets and rules the administrator made'
      : `permanent ipsets hash:ip (hash:net for networks) timeout ${this.config.expires} maxelem ${this.config.maxelem} and direct DROP rules`;
    return `firewalld (${this.fwcmd}) ipsets ${this.names(this.scopes).join(', ')} (${how}), bans through ${this.ipset}`;
  }

  /** What the kernel holds: these scopes' ipsets, and the DROP rules (in INPUT with firewalld's nftables backend, INPUT_direct with its iptables backend). */
  private async kernelOk(scopes: readonly Scope[] = this.scopes): Promise<boolean> {
    const names = await ipsetNames(this.ipset);
    if (!this.names(scopes).every((n) => names.has(n))) return false;
    if (this.config.nocreate) return true;
    for (const f of this.fams) {
      const ipt = path.join(this.config.iptPath, f === 4 ? 'iptables' : 'ip6tables');
      const rules = this.rules(scopes).filter(([g]) => g === f).map(([, m]) => m);
      if (!(await rulesPresent(ipt, ['INPUT', 'INPUT_direct'], rules)).every(Boolean)) return false;
    }
    return true;
  }

  async setup(): Promise<void> {
    this.scopes = await this.setupScopes(this.scopes);
  }

  async setScopes(scopes: Scope[]): Promise<void> {
    // The reload this may need empties every ipset; the queue sees the rules go (monitor.ts)
    // or the sampled bans go missing (probe), and re-fills.
    const added = scopeList(this.scopes, scopes).slice(this.scopes.length);
    if (added.length) this.scopes = [...this.scopes, ...(await this.setupScopes(added))];
  }

  /** ipsets and direct rules of these scopes made where missing; the scopes usable now (nocreate: those whose ipsets exist). */
  private async setupScopes(scopes: readonly Scope[]): Promise<Scope[]> {
    const sets = this.names(scopes).join(',');
    if (this.config.nocreate) {
      const names = await ipsetNames(this.ipset);
      return usableScopes(scopes, this.fams, (n) => names.has(n), this.log, 'firewalld ipset');
    }
    let changed = false;
    const have = new Set((await runOk([this.fwcmd, '--permanent', '--get-ipsets'], { timeoutMs: TIMEOUT_MS })).stdout.split(/\s+/).filter(Boolean));
    for (const scope of scopes) {
      for (const f of this.fams) {
        if (have.has(setName(f, scope))) continue;
        await runOk([this.fwcmd, '--permanent', `--new-ipset=${setName(f, scope)}`, `--type=${setType(scope)}`, `--family=${f === 4 ? 'inet' : 'inet6'}`,
          `--option=timeout=${this.config.expires}`, `--option=maxelem=${this.config.maxelem}`], { timeoutMs: TIMEOUT_MS });
        changed = true;
      }
    }
    // Every direct rule in one call, one per line as added (ours hold no spaces in an argument):
    // a --query-rule per rule costs a firewall-cmd each (1-2 s apiece, measured), per scope.
    const rules = new Set((await runOk([this.fwcmd, '--permanent', '--direct', '--get-all-rules'], { timeoutMs: TIMEOUT_MS })).stdout.split('\n').map((l) => l.trim().split(/\s+/).join(' ')));
    for (const [f, m] of this.rules(scopes)) {
      if (rules.has(this.direct(f, m).join(' '))) continue;
      await runOk([this.fwcmd, '--permanent', '--direct', '--add-rule', ...this.direct(f, m)], { timeoutMs: TIMEOUT_MS });
      changed = true;
    }
    // One reload, only when the permanent configuration changed or the kernel lost something
    // (firewalld's own runtime view does not notice a rule deleted behind its back).
    if (changed || !(await this.kernelOk(scopes))) {
      await runOk([this.fwcmd, '--reload'], { timeoutMs: TIMEOUT_MS });
      this.log.info('firewalld reloaded with tallow ipsets and direct rules', { sets });
      if (!(await this.kernelOk(scopes))) throw new Error(`${this.fwcmd} --reload: tallow's ipsets or direct rules are still not in the kernel`);
    }
    return [...scopes];
  }

  check(): Promise<boolean> {
    return this.kernelOk();
  }

  apply(add: BanEntry[], remove: BanRemoval[]): Promise<void> {
    return ipsetApply(this.session, add, remove, this.fams, this.scopes);
  }

  list(): Promise<KernelBan[]> {
    return ipsetList(this.ipset, this.fams, this.scopes);
  }

  present(sample: BanRemoval[]): Promise<boolean[]> {
    return ipsetPresent(this.session, sample, this.scopes);
  }
  async watch(changed: () => void): Promise<boolean> {
    // iptables-nft rules are nftables rules: the kernel reports their deletion (monitor.ts).
    this.monitor = NftMonitor.start(changed, this.log);
    return this.monitor !== null && (await iptablesIsNft(path.join(this.config.iptPath, 'iptables')));
  }

  async close(): Promise<void> {
    this.monitor?.close();
    await this.session.close();
  }
}

export const firewalldBackend: BackendModule = {
  name: 'firewalld',
  restartKeys: ['fwcmdPath', 'iptPath'],
  unavailableWhy: (config) => `${config.fwcmdPath}/firewall-cmd --state does not say running`,
  async available(config) {
    try {
      const r = await run([path.join(config.fwcmdPath, 'firewall-cmd'), '--state'], { timeoutMs: 15_000 });
      return r.code === 0 && r.stdout.trim() === 'running';
    } catch {
      return false; // firewall-cmd not installed
    }
  },
  create(config, log) {
    return new FirewalldBackend(config, log);
  },
};
