// Address parsing and normalisation. One canonical text per address, so the tracker, the allowlist
// and the firewall sets all agree on what "the same address" is.
import { isIP } from 'node:net';
import { Address6 } from 'ip-address';

export type Family = 4 | 6;
export interface Address {
  /** Canonical text: dotted quad for IPv4 (IPv4-mapped IPv6 becomes IPv4), RFC 5952 for IPv6. */
  address: string;
  family: Family;
}

// RFC 5952 form of an IPv4-mapped address as ip-address prints it: ::ffff:X:Y (hex groups).
const MAPPED = /^::ffff:[0-9a-f]{1,4}:[0-9a-f]{1,4}$/;

/** null when `text` is not a single valid IPv4/IPv6 address (no CIDR, no port, no zone). */
export function parseAddress(text: string): Address | null {
  // net.isIP is the fast gate (no allocation) and already refuses CIDR, ports, leading zeros in
  // IPv4 and surrounding space; a dotted quad it accepts is its own canonical form.
  const kind = isIP(text);
  if (kind === 4) return { address: text, family: 4 };
  if (kind !== 6) return null;
  if (text.includes('%')) return null; // a zone index names an interface, not a remote host
  let a: Address6;
  try {
    a = new Address6(text);
  } catch {
    return null;
  }
  const canonical = a.correctForm();
  if (MAPPED.test(canonical)) return { address: a.to4().correctForm(), family: 4 };
  return { address: canonical, family: 6 };
}
