// CONTRACT (issue 4 implements): backend choice, and the queue that batches, retries and
// re-fills. The daemon only talks to Firewall.
import type { Config } from '../config';
import type { BanEntry, FirewallBackend, KernelBan, Logger } from './backend';
import type { Family } from '../address';

export class FirewallError extends Error {}

/** backend=auto: firewalld if running, else ipset+iptables if present, else nftables. dryRun: log only. */
export declare function chooseBackend(config: Config, log: Logger, dryRun: boolean): Promise<FirewallBackend>;

export declare class Firewall {
  constructor(backend: FirewallBackend, log: Logger);
  readonly backend: FirewallBackend;
  /** setup() with retry/back-off logging; resolves once sets and rules are in place (or throws FirewallError). */
  start(): Promise<void>;
  /** Queue bans; all queued together go out in one process. Never throws: failures are logged and retried. */
  ban(entries: BanEntry[]): void;
  unban(entries: { address: string; family: Family }[]): void;
  /** Resolves when everything queued so far reached the kernel (or failed and was re-queued). */
  flush(): Promise<void>;
  /** Bans we believe are active (address -> expiry ms), re-filled into the kernel when lost. */
  active(): Map<string, { family: Family; expiry: number }>;
  list(): Promise<KernelBan[]>;
  /** Stop timers; bans stay in the kernel to expire by themselves. */
  close(): Promise<void>;
}
