// CONTRACT (issue 4 implements): what every firewall backend does. One module per backend
// (ipset.ts, firewalld.ts, nftables.ts, dryrun.ts) implements it; nothing else knows which one runs.
import type { Family } from '../address';
import type { Config } from '../config';

export interface BanEntry {
  address: string; // canonical (parseAddress)
  family: Family;
  seconds: number; // kernel timeout
}

export interface KernelBan {
  address: string;
  family: Family;
  /** seconds left on the kernel entry */
  remaining: number;
}

export interface Logger {
  info(msg: string, fields?: Record<string, string>): void;
  warn(msg: string, fields?: Record<string, string>): void;
  error(msg: string, fields?: Record<string, string>): void;
  debug(msg: string, fields?: Record<string, string>): void;
}

export interface FirewallBackend {
  readonly name: string;
  /** One line for the start-up summary: sets/table/rules used. */
  describe(): string;
  /** Create sets and rules if missing (never destroys existing ones); nothing when nocreate. Idempotent. */
  setup(): Promise<void>;
  /** Are our sets and rules still in place? (someone may have flushed or reloaded the firewall) */
  check(): Promise<boolean>;
  /** Add (or refresh the timeout of) all these entries in one process. */
  add(entries: BanEntry[]): Promise<void>;
  /** Remove these entries in one process; absent ones are not an error. */
  remove(entries: { address: string; family: Family }[]): Promise<void>;
  /** What the kernel holds now. */
  list(): Promise<KernelBan[]>;
  /**
   * Optional: additions and removals taken together in ONE process (the queue prefers this when
   * present; otherwise it calls add() then remove()).
   */
  apply?(add: BanEntry[], remove: { address: string; family: Family }[]): Promise<void>;
}

/** A backend module exports one of these; the registry in index.ts lists them. */
export interface BackendModule {
  name: string;
  /** Can this backend run here (tools present, service running)? Used by backend=auto. */
  available(config: Config): Promise<boolean>;
  create(config: Config, log: Logger): FirewallBackend;
}
