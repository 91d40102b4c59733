// Notices a firewall reload as it happens: `nft monitor destroy rules` sleeps in the kernel until
// a rule is deleted (by `iptables -F`, `nft flush ruleset`, a firewalld reload; iptables-nft rules
// are nftables rules), then prints a line. Costs nothing while idle; the queue's own checks still
// run when nft is missing or the rules are iptables-legacy ones.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import type { Logger } from './backend';
import { countExec, run } from './exec';

/** Are these iptables rules nftables rules (iptables-nft), whose deletion `nft monitor` sees? */
export async function iptablesIsNft(iptables: string): Promise<boolean> {
  try {
    return /nf_tables/.test((await run([iptables, '-V'], { timeoutMs: 10_000 })).stdout);
  } catch {
    return false;
  }
}

/** Lines that come in a burst (a flush deletes many rules) make one call, this long after the first. */
const SETTLE_MS = 100;
const LATE_MS = 2000;
const RESTART_MS = [1000, 5000, 30_000, 60_000];

export class NftMonitor {
  private child: ChildProcess | null = null;
  private closed = false;
  private timer: NodeJS.Timeout | null = null;
  private late: NodeJS.Timeout | null = null;
  private restarts = 0;

  private constructor(
    private readonly nft: string,
    private readonly changed: () => void,
    private readonly log: Logger,
  ) {}

  /** null when nft is not installed there (then only the periodic checks notice a reload). */
  static start(nftPath: string, changed: () => void, log: Logger): NftMonitor | null {
    const nft = path.join(nftPath, 'nft');
    if (!existsSync(nft)) return null;
    const m = new NftMonitor(nft, changed, log);
    m.spawn();
    return m;
  }

  private spawn(): void {
    countExec();
    const child = spawn(this.nft, ['monitor', 'destroy', 'rules'], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    this.child = child;
    child.stderr!.resume();
    // A watcher never keeps the process alive by itself.
    child.unref();
    (child.stdout as unknown as { unref(): void }).unref();
    (child.stderr as unknown as { unref(): void }).unref();
    child.stdout!.on('data', () => {
      this.restarts = 0;
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
    });
    child.on('error', () => {});
    child.on('close', (code, signal) => {
      if (this.child !== child || this.closed) return;
      this.child = null;
      const delay = RESTART_MS[Math.min(this.restarts++, RESTART_MS.length - 1)];
      this.log.warn('nft monitor ended; restarting it', { status: String(signal ?? code), retry_in_ms: String(delay) });
      // Whatever happened while it was down is caught by a check now.
      this.changed();
      setTimeout(() => {
        if (!this.closed) this.spawn();
      }, delay).unref();
    });
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.late) clearTimeout(this.late);
    const c = this.child;
    this.child = null;
    if (c && c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
  }
}
