// CONTRACT (issue 3 implements).
import type { Family } from './address';

export declare class Allowlist {
  /** Addresses, CIDR, tallow's prefix form ('192.168.'). Throws Error naming the bad entry. */
  constructor(entries: string[]);
  /** `address` already canonical (parseAddress). */
  has(address: string, family: Family): boolean;
  readonly size: number;
}
