// Addresses that are never scored or banned. Entries are parsed once into an AddressSet, which
// checks a canonical address with one lookup per prefix length in the list.
import { parseAddress } from './address';
import { AddressSet } from './address-set';
import type { Family } from './address';

/** tallow's defaults when the configuration names none, with all of loopback (tallow had 127.0.0.1
 *  only, but sshd also logs 127.0.0.2 etc.) and ::1, which tallow lacked. */
export const DEFAULT_ALLOWLIST: readonly string[] = ['127.0.0.0/8', '192.168.', '10.', '::1'];

export interface AllowEntry {
  /** canonical network address */
  address: string;
  family: Family;
  /** prefix length: 32/128 for a single address */
  prefix: number;
}

const HINT = "expected an address, a CIDR ('203.0.113.0/24', '2001:db8::/32') or a prefix ('192.168.', 'fe80:')";

/** Parse one allowlist entry; throws Error naming the entry and what is wrong. */
export function parseAllowEntry(text: string): AllowEntry {
  const entry = text.trim();
  const bad = (why: string) => new Error(`allowlist entry '${text}': ${why}`);
  if (entry === '') throw bad(`empty; ${HINT}`);

  const slash = entry.indexOf('/');
  if (slash >= 0) {
    const a = parseAddress(entry.slice(0, slash));
    const bits = entry.slice(slash + 1);
    if (!a || !/^\d{1,3}$/.test(bits)) throw bad(`not a valid CIDR; ${HINT}`);
    let prefix = Number(bits);
    // An IPv4-mapped network (::ffff:a.b.c.d/120) is the IPv4 network a.b.c.d/24.
    const mapped = a.family === 4 && entry.includes(':');
    if (mapped) {
      if (prefix < 96) throw bad('an IPv4-mapped network needs a prefix of at least 96');
      prefix -= 96;
    }
    const max = a.family === 4 ? 32 : 128;
    if (prefix > max) throw bad(`prefix /${bits} is longer than ${mapped ? 128 : max} bits`);
    return { address: a.address, family: a.family, prefix };
  }

  // tallow's prefix form: a string prefix ending at an octet ('10.', '192.168.') or a group
  // boundary ('fe80:', '2001:db8:'), turned into the equivalent CIDR.
  if (entry.endsWith('.')) {
    const parts = entry.slice(0, -1).split('.');
    if (parts.length > 3 || !parts.every((p) => /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/.test(p))) {
      throw bad(`not a prefix of whole octets; ${HINT}`);
    }
    while (parts.length < 4) parts.push('0');
    return { address: parts.join('.'), family: 4, prefix: (entry.split('.').length - 1) * 8 };
  }
  if (entry.endsWith(':')) {
    const parts = entry.slice(0, -1).split(':');
    if (parts.length > 7 || !parts.every((p) => /^[0-9a-fA-F]{1,4}$/.test(p))) {
      // '2001:db8::' cannot be a string prefix on group boundaries ('::' hides how many groups).
      throw bad(`cannot be turned into a CIDR (write it as a CIDR, e.g. 2001:db8::/32); ${HINT}`);
    }
    const groups = parts.length;
    const a = parseAddress(groups === 7 ? `${parts.join(':')}:0` : `${parts.join(':')}::`);
    if (!a) throw bad(`not a valid IPv6 prefix; ${HINT}`);
    return { address: a.address, family: 6, prefix: groups * 16 };
  }

  const a = parseAddress(entry);
  if (!a) throw bad(`not a valid address; ${HINT}`);
  return { address: a.address, family: a.family, prefix: a.family === 4 ? 32 : 128 };
}

export class Allowlist {
  private readonly list = new AddressSet();
  readonly size: number;
  readonly entries: readonly AllowEntry[];

  /** Addresses, CIDR, tallow's prefix form ('192.168.'). Throws Error naming the bad entry. */
  constructor(entries: string[]) {
    const parsed = entries.map(parseAllowEntry);
    for (const e of parsed) this.list.add(e.address, e.prefix, e.family);
    this.entries = parsed;
    this.size = parsed.length;
  }

  /** `address` already canonical (parseAddress). */
  has(address: string, family: Family): boolean {
    return this.list.has(address, family);
  }
}
