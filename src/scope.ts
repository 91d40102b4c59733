// Where a ban applies: every port (tallow's sets) or a rule's ports, to single addresses or to
// networks (a rule's ban_prefix). Each scope is one pair of kernel sets (IPv4, IPv6) with one DROP
// rule each; rules with the same ports share them. Shared by the rules (which ask for a scope), the
// ledger (which keys bans by address and scope) and every firewall backend (which names sets by it).
import { createHash } from 'node:crypto';
import type { Family } from './address';

export type Protocol = 'tcp' | 'udp';

export interface Scope {
  /** '' for every port and single addresses (tallow's own `tallow`/`tallow6` sets); else e.g. `p22`, `p25_465_587t`, `net`, `p22_net`. */
  id: string;
  /** Destination ports ("22", "8000-8080"), ascending; null: every port. */
  ports: string[] | null;
  /** With ports: which protocols the DROP rule covers. */
  protocols: Protocol[];
  /** Holds networks (ipset hash:net, nftables interval sets), not only single addresses. */
  net: boolean;
}

/** tallow's scope: every port, single addresses. */
export const ALL_PORTS: Scope = Object.freeze({ id: '', ports: null, protocols: ['tcp', 'udp'] as Protocol[], net: false });

/** ipset's IPSET_MAXNAMELEN is 32 with the NUL; nftables and firewalld accept as long. */
export const MAX_SET_NAME = 31;

/** The kernel set's name for a family and scope: `tallow`, `tallow6`, `tallow_p22`, `tallow6_p22_net`. */
export function setName(family: Family, scope: Scope | string): string {
  const id = typeof scope === 'string' ? scope : scope.id;
  const base = family === 4 ? 'tallow' : 'tallow6';
  return id === '' ? base : `${base}_${id}`;
}

/** One port or a range, 1-65535. */
function portTerm(v: unknown): string {
  const text = typeof v === 'number' ? String(v) : typeof v === 'string' ? v.trim() : '';
  const m = /^(\d{1,5})(?:[-:](\d{1,5}))?$/.exec(text);
  const ok = (n: number) => Number.isInteger(n) && n >= 1 && n <= 65535;
  if (!m || !ok(Number(m[1])) || (m[2] !== undefined && (!ok(Number(m[2])) || Number(m[2]) <= Number(m[1])))) {
    throw new Error(`"ports": expected port numbers 1-65535 or ranges "FROM-TO", got ${JSON.stringify(v)}`);
  }
  return m[2] === undefined ? String(Number(m[1])) : `${Number(m[1])}-${Number(m[2])}`;
}

/**
 * A rule's `ports`, `protocol` and whether it bans networks -> its scope. `ports`: absent or
 * "all" (every port), or an array of numbers / "N" / "N-M". `protocol`: "tcp", "udp" or absent
 * (both). Throws Error with a message naming the key.
 */
export function scopeOf(ports: unknown, protocol: unknown, net: boolean): Scope {
  let list: string[] | null = null;
  if (ports !== undefined && ports !== 'all') {
    if (!Array.isArray(ports) || ports.length === 0) throw new Error(`"ports": expected "all" or a non-empty array of ports, got ${JSON.stringify(ports)}`);
    if (ports.length > 15) throw new Error('"ports": at most 15 ports or ranges (iptables multiport)');
    list = [...new Set(ports.map(portTerm))].sort((a, b) => parseInt(a, 10) - parseInt(b, 10) || a.localeCompare(b));
  }
  let protocols: Protocol[] = ['tcp', 'udp'];
  if (protocol !== undefined) {
    if (protocol !== 'tcp' && protocol !== 'udp') throw new Error(`"protocol": expected "tcp" or "udp" (absent: both), got ${JSON.stringify(protocol)}`);
    if (list === null) throw new Error('"protocol" needs "ports" (a ban on every port covers every protocol)');
    protocols = [protocol];
  }
  if (list === null && !net) return ALL_PORTS;
  const parts: string[] = [];
  if (list) parts.push(`p${list.join('_').replace(/-/g, 'to')}${protocols.length === 1 ? protocols[0][0] : ''}`);
  if (net) parts.push('net');
  let id = parts.join('_');
  if (setName(6, id).length > MAX_SET_NAME) {
    id = `h${createHash('sha256').update(id).digest('hex').slice(0, 12)}${net ? '_net' : ''}`;
  }
  return { id, ports: list, protocols: list ? protocols : ['tcp', 'udp'], net };
}

/** The ledger's and the firewall queue's key: one ban per address (or network) and scope. */
export function banKey(address: string, scope: string): string {
  return scope === '' ? address : `${address}@${scope}`;
}

/** Where networks banned by hand (`tallow ban NETWORK`, no rule) apply, and the fleet's networks no rule here bans: every port. */
export const MANUAL_NETWORKS: Scope = scopeOf(undefined, undefined, true);
