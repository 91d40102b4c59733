// The last check before an address reaches a command line or a tool's script: whatever the
// caller parsed, only a plain IPv4/IPv6 literal of the stated family passes (no spaces, no
// newline, no option-looking text), or, for a scope that holds networks, a canonical network in
// CIDR text; and timeouts are whole seconds in the kernel's range.
import { isIPv4, isIPv6 } from 'node:net';
import { parseAddress, type Family } from '../address';
import { MAX_BAN_SECONDS } from '../limits';

/** ipset stores timeouts in milliseconds: larger values are refused. */
export const MAX_TIMEOUT = MAX_BAN_SECONDS;

export function validAddress(address: unknown, family: unknown): address is string {
  if (typeof address !== 'string') return false;
  if (family === 4) return isIPv4(address);
  // isIPv6 accepts zone ids ("fe80::1%eth0"); a set entry cannot hold one.
  if (family === 6) return isIPv6(address) && !address.includes('%');
  return false;
}

const BITS: Record<Family, number> = { 4: 32, 6: 128 };

/** The address as a number of BITS[family] bits (the text is already a valid literal). */
function addressBits(address: string, family: Family): bigint {
  if (family === 4) return address.split('.').reduce((n, o) => (n << 8n) | BigInt(Number(o)), 0n);
  // Expand '::' into the missing zero groups.
  const [head, tail] = address.includes('::') ? address.split('::') : [address, undefined];
  const h = head ? head.split(':') : [];
  const t = tail === undefined ? [] : tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return groups.reduce((n, g) => (n << 16n) | BigInt(parseInt(g, 16)), 0n);
}

/**
 * A network in CIDR text as the kernel prints it back: the canonical address (RFC 5952 for
 * IPv6), a prefix shorter than the family's width and at least 1 (a /32 or /128 is the bare
 * address; /0 would drop everyone), host bits zero. ipset would silently mask `192.0.2.9/24` to
 * `192.0.2.0/24`, so a ban and the entry it made would not have the same name.
 */
export function validNetwork(text: unknown, family: unknown): text is string {
  if (typeof text !== 'string' || (family !== 4 && family !== 6)) return false;
  const m = /^([0-9a-f.:]+)\/(\d{1,3})$/.exec(text);
  if (!m || !validAddress(m[1], family)) return false;
  const parsed = parseAddress(m[1]);
  if (!parsed || parsed.family !== family || parsed.address !== m[1]) return false;
  const prefix = Number(m[2]);
  if (String(prefix) !== m[2] || prefix < 1 || prefix >= BITS[family]) return false;
  const host = (1n << BigInt(BITS[family] - prefix)) - 1n;
  return (addressBits(m[1], family) & host) === 0n;
}

/** What a set of this kind may hold: a single address, or also a network when `net`. */
export function validTarget(address: unknown, family: unknown, net: boolean): address is string {
  return validAddress(address, family) || (net && validNetwork(address, family));
}

/** Whole seconds, at least 1, at most MAX_TIMEOUT; null when not a finite number. */
export function clampSeconds(seconds: unknown): number | null {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds)) return null;
  return Math.min(MAX_TIMEOUT, Math.max(1, Math.ceil(seconds)));
}

export function familyName(family: Family): string {
  return family === 4 ? 'IPv4' : 'IPv6';
}
