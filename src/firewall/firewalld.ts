// firewalld, chosen when `firewall-cmd --state` says running: firewalld owns the sets and rules,
// made permanent (ipsets `tallow`/`tallow6` with a timeout option, direct rules
// `-m set --match-set tallow src -j DROP` at the top of INPUT) and loaded with one reload.
//
// Bans go into the kernel ipsets through one long-lived `ipset -` (as the ipset backend). Checked for real
// with firewalld 1.3 on Debian 12 (FirewallBackend=nftables): firewalld then creates BOTH an nft
// set in `table inet firewalld` (flags interval, no timeout, unused by us) and the kernel ipset
// with our timeout/maxelem, and the direct rule (iptables-nft, `xt match set`) matches the kernel
// ipset; so the kernel ipset is the one that drops packets under either firewalld backend.
// A `firewall-cmd --reload` empties that ipset: its rule deletions wake the nft monitor (and the
// queue's probe of a few bans every 2 s notices an emptied set), and the queue re-fills.
import * as path from 'node:path';
import type { Family } from '../address';
import type { BackendModule, BanEntry, FirewallBackend, FirewallSettings, KernelBan, Logger } from './backend';
import { CommandError, TOOL_TIMEOUT_MS as TIMEOUT_MS, families, run, runOk } from './exec';
import { SET_NAME, ipsetApply, ipsetList, ipsetNames, ipsetPresent, ipsetSession } from './ipset';
import { NftMonitor, iptablesIsNft } from './monitor';
import type { ToolSession } from './session';

const IPV: Record<Family, string> = { 4: 'ipv4', 6: 'ipv6' };

class FirewalldBackend implements FirewallBackend {
  readonly name = 'firewalld';
  private readonly fams: Family[];
  private readonly fwcmd: string;
  private readonly ipset: string;
  readonly session: ToolSession;
  private monitor: NftMonitor | null = null;

  constructor(
    private readonly config: FirewallSettings,
    private readonly log: Logger,
  ) {
    this.fams = families(config);
    this.fwcmd = path.join(config.fwcmdPath, 'firewall-cmd');
    this.ipset = path.join(config.iptPath, 'ipset');
    this.session = ipsetSession(this.ipset);
  }

  private rule(f: Family): string[] {
    return [IPV[f], 'filter', 'INPUT', '1', '-m', 'set', '--match-set', SET_NAME[f], 'src', '-j', 'DROP'];
  }

  describe(): string {
    const sets = this.fams.map((f) => SET_NAME[f]).join(', ');
    const how = this.config.nocreate
      ? 'nocreate: using the ipsets and rules the administrator made'
      : `permanent ipsets hash:ip timeout ${this.config.expires} maxelem ${this.config.maxelem} and direct DROP rules`;
    return `firewalld (${this.fwcmd}) ipsets ${sets} (${how}), bans through ${this.ipset}`;
  }

  private fw(args: string[]) {
    return run([this.fwcmd, ...args], { timeoutMs: TIMEOUT_MS });
  }

  /** What the kernel holds: our ipsets, and the DROP rules (in INPUT with firewalld's nftables backend, INPUT_direct with its iptables backend). */
  private async kernelOk(): Promise<boolean> {
    const names = await ipsetNames(this.ipset);
    if (!this.fams.every((f) => names.has(SET_NAME[f]))) return false;
    if (this.config.nocreate) return true;
    for (const f of this.fams) {
      const ipt = path.join(this.config.iptPath, f === 4 ? 'iptables' : 'ip6tables');
      let found = false;
      for (const chain of ['INPUT', 'INPUT_direct']) {
        const r = await run([ipt, '-w', '-C', chain, '-m', 'set', '--match-set', SET_NAME[f], 'src', '-j', 'DROP'], { timeoutMs: TIMEOUT_MS });
        if (r.code === 0) {
          found = true;
          break;
        }
      }
      if (!found) return false;
    }
    return true;
  }

  async setup(): Promise<void> {
    if (this.config.nocreate) {
      if (!(await this.kernelOk())) this.log.warn('nocreate=1 but the firewalld ipsets are missing: bans will fail until they exist', { sets: this.fams.map((f) => SET_NAME[f]).join(',') });
      return;
    }
    let changed = false;
    const have = new Set((await runOk([this.fwcmd, '--permanent', '--get-ipsets'], { timeoutMs: TIMEOUT_MS })).stdout.split(/\s+/).filter(Boolean));
    for (const f of this.fams) {
      if (have.has(SET_NAME[f])) continue;
      await runOk([this.fwcmd, '--permanent', `--new-ipset=${SET_NAME[f]}`, '--type=hash:ip', `--family=${f === 4 ? 'inet' : 'inet6'}`,
        `--option=timeout=${this.config.expires}`, `--option=maxelem=${this.config.maxelem}`], { timeoutMs: TIMEOUT_MS });
      changed = true;
    }
    for (const f of this.fams) {
      // --query-rule: exit 0 "yes", exit 1 "no"; anything else is a real error.
      const argv = ['--permanent', '--direct', '--query-rule', ...this.rule(f)];
      const q = await this.fw(argv);
      if (q.code === 0) continue;
      if (q.code !== 1) throw new CommandError(`${this.fwcmd} ${argv.join(' ')}: exit status ${q.code}: ${(q.stderr || q.stdout).trim()}`, [this.fwcmd, ...argv], q);
      await runOk([this.fwcmd, '--permanent', '--direct', '--add-rule', ...this.rule(f)], { timeoutMs: TIMEOUT_MS });
      changed = true;
    }
    // One reload, only when the permanent configuration changed or the kernel lost something
    // (firewalld's own runtime view does not notice a rule deleted behind its back).
    if (changed || !(await this.kernelOk())) {
      await runOk([this.fwcmd, '--reload'], { timeoutMs: TIMEOUT_MS });
      this.log.info('firewalld reloaded with tallow ipsets and direct rules', { sets: this.fams.map((f) => SET_NAME[f]).join(',') });
      if (!(await this.kernelOk())) throw new Error(`${this.fwcmd} --reload: tallow's ipsets or direct rules are still not in the kernel`);
    }
  }

  check(): Promise<boolean> {
    return this.kernelOk();
  }

  apply(add: BanEntry[], remove: { address: string; family: Family }[]): Promise<void> {
    return ipsetApply(this.session, add, remove, this.fams);
  }

  list(): Promise<KernelBan[]> {
    return ipsetList(this.ipset, this.fams);
  }

  present(sample: { address: string; family: Family }[]): Promise<boolean[]> {
    return ipsetPresent(this.session, sample);
  }

  async watch(changed: () => void): Promise<boolean> {
    // iptables-nft rules are nftables rules: a reload deletes them and nft monitor says so.
    this.monitor = NftMonitor.start(this.config.nftPath, changed, this.log);
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
