// The last check before an address reaches a command line or a tool's script: whatever the
// caller parsed, only a plain IPv4/IPv6 literal of the stated family passes (no spaces, no
// newline, no CIDR, no option-looking text), and timeouts are whole seconds in the kernel's range.
import { isIPv4, isIPv6 } from 'node:net';
import type { Family } from '../address';
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

/** Whole seconds, at least 1, at most MAX_TIMEOUT; null when not a finite number. */
export function clampSeconds(seconds: unknown): number | null {
  if (typeof seconds !== 'number' || !Number.isFinite(seconds)) return null;
  return Math.min(MAX_TIMEOUT, Math.max(1, Math.ceil(seconds)));
}

export function familyName(family: Family): string {
  return family === 4 ? 'IPv4' : 'IPv6';
}
