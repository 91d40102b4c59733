// Notices a firewall reload as it happens: the kernel tells every listener of its nftables
// netlink group (NFNLGRP_NFTABLES, what `nft monitor` reads) when a rule, chain, table or set is
// deleted (by `iptables -F`, `nft flush ruleset`, a firewalld reload; iptables-nft rules are
// nftables rules). The socket is the addon's (native/rulewatch.cc): no process, nothing to
// restart, no cost while idle. The queue's own checks still run when the socket cannot be opened
// or the rules are iptables-legacy ones.
import { addon } from '../addon';
import { errText } from '../limits';
import type { Logger } from './backend';
import { run } from './exec';

/** Are these iptables rules nftables rules (iptables-nft), whose deletion the kernel reports? */
export async function iptablesIsNft(iptables: string): Promise<boolean> {
  try {
    return /nf_tables/.test((await run([iptables, '-V'], { timeoutMs: 10_000 })).stdout);
  } catch {
    return false;
  }
}

// nftables message types (linux/netfilter/nf_tables.h) that mean something was taken away.
// Additions and set elements (our own bans and unbans with the nftables backend) are not news.
export const NFT_MSG_DELTABLE = 2;
export const NFT_MSG_DELCHAIN = 5;
export const NFT_MSG_DELRULE = 8;
export const NFT_MSG_DELSET = 11;
const DELETIONS = [NFT_MSG_DELTABLE, NFT_MSG_DELCHAIN, NFT_MSG_DELRULE, NFT_MSG_DELSET];

/** Messages that come in a burst (a flush deletes many rules) make one call, this long after the first. */
const SETTLE_MS = 100;
const LATE_MS = 2000;

export class NftMonitor {
  private watch: { close(): void } | null = null;
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  private late: NodeJS.Timeout | null = null;

  private constructor(private readonly changed: () => void) {}

  /** null when the kernel's notifications cannot be had (then only the periodic checks notice a reload). */
  static start(changed: () => void, log: Logger): NftMonitor | null {
    const m = new NftMonitor(changed);
    try {
      m.watch = new (addon().RuleWatch)(DELETIONS, () => m.deleted());
    } catch (e) {
      log.warn(`firewall changes from outside are noticed by the periodic check only: ${errText(e)}`);
      return null;
    }
    return m;
  }

  private deleted(): void {
    // Once soon, and once when the burst has been quiet a while: a check that ran in the middle
    // of a reload (firewalld takes about a second) may have seen sets not yet emptied.
    if (this.late) clearTimeout(this.late);
    this.late = setTimeout(() => {
      this.late = null;
      if (!this.closed) this.changed();
    }, LATE_MS);
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (!this.closed) this.changed();
    }, SETTLE_MS);
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.late) clearTimeout(this.late);
    this.watch?.close();
    this.watch = null;
  }
}
