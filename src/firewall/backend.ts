// What every firewall backend does. One module per backend (ipset.ts, firewalld.ts, nftables.ts,
// dryrun.ts) implements it and is listed once in index.ts; nothing else knows which one runs.
// Bans are held per scope (src/scope.ts): one set per scope and family, with its own DROP rule.
import type { Family } from '../address';
import type { Logger } from '../log';
import type { Scope } from '../scope';

export type { Logger, Scope };

export interface BanEntry {
  /** canonical (parseAddress); in a scope with `net`, also a canonical network `192.0.2.0/24` */
  address: string;
  family: Family;
  seconds: number; // kernel timeout
  /** Scope id (absent: '', tallow's own sets, every port). */
  scope?: string;
}

export interface BanRemoval {
  address: string;
  family: Family;
  /** Scope id (absent: ''). */
  scope?: string;
}

export interface KernelBan {
  address: string;
  family: Family;
  /** seconds left on the kernel entry */
  remaining: number;
  /** The scope id of the set it was found in ('' for tallow's own sets). */
  scope: string;
}

/** The part of tallow.conf a backend may read (index.ts fills it in), nothing more. */
export interface FirewallSettings {
  /** seconds: the sets' default timeout */
  expires: number;
  ipv6: boolean;
  nocreate: boolean;
  maxelem: number;
  /** directories of the tools (tallow.conf ipt_path, nft_path, fwcmd_path) */
  iptPath: string;
  nftPath: string;
  fwcmdPath: string;
  /** The scopes to hold sets and rules for; ALL_PORTS always among them (scopeList()). */
  scopes: Scope[];
}

export interface FirewallBackend {
  readonly name: string;
  /** One line for the start-up summary: sets/table/rules used. */
  describe(): string;
  /** Create sets and rules of every scope if missing (never destroys existing ones); nothing when nocreate. Idempotent. */
  setup(): Promise<void>;
  /**
   * The scopes held now (ALL_PORTS first). Backends without it hold ALL_PORTS only.
   */
  readonly scopes?: readonly Scope[];
  /**
   * Adds scopes (a reload with new rules): their sets and rules are set up, then they count in
   * check() and list(). Scopes already held are kept, never removed (their bans expire by
   * themselves). Throws when set-up fails; the new scopes are then not held.
   */
  setScopes?(scopes: Scope[]): Promise<void>;
  /** Are the sets and rules of every scope still in place? (someone may have flushed or reloaded the firewall) */
  check(): Promise<boolean>;
  /**
   * Additions (or timeout refreshes) and removals together; absent removals are no error. Throws
   * RefusedError when the tool took the batch but refused some of its elements (the queue then
   * splits the batch to find them); any other error means nothing can be trusted to have landed.
   */
  apply(add: BanEntry[], remove: BanRemoval[]): Promise<void>;
  /** What the kernel holds now, in every scope's sets. */
  list(): Promise<KernelBan[]>;
  /**
   * Cheap look (no process where the backend keeps a session): is each of these bans in the
   * kernel? A missing set answers false. Lets the queue notice a flushed set within seconds
   * without listing every element.
   */
  present?(sample: BanRemoval[]): Promise<boolean[]>;
  /**
   * Calls `changed` when something outside may have removed sets or rules (a firewall reload).
   * Resolves true when reloads will be seen this way (then the queue does not poll with present()).
   */
  watch?(changed: () => void): Promise<boolean>;
  /** Ends long-lived helper processes. */
  close?(): Promise<void>;
}

/** The tool took the batch and refused part of it for its elements' sake (not a missing set). */
export class RefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RefusedError';
  }
}

/** A backend module exports one of these; the registry in index.ts lists them. */
export interface BackendModule {
  name: string;
  /** The settings this backend reads that take effect only at start (a reload names them); tallow.conf keys. */
  restartKeys: Exclude<keyof FirewallSettings, 'scopes'>[];
  /** Can this backend run here (tools present, service running)? Used by backend=auto. */
  available(settings: FirewallSettings): Promise<boolean>;
  /** Why it cannot, for the error line when it was asked for by name. */
  unavailableWhy(settings: FirewallSettings): string;
  create(settings: FirewallSettings, log: Logger): FirewallBackend;
}
