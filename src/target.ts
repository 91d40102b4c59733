// What a rule scores and bans: the address itself, or the network it is in when the rule has a
// ban prefix (`ban_prefix_v6=64`: one attacker rotating through its /64 is one target). One
// canonical text per target (`192.0.2.0/24`, `2001:db8::/64`, or the address), so the tracker,
// the ledger, the state file and the firewall agree on "the same network".
import { BlockList } from 'node:net';
import { parseAddress, type Family } from './address';

export const FULL_PREFIX: Readonly<Record<Family, number>> = Object.freeze({ 4: 32, 6: 128 });

/** The target of `address` (canonical) for a prefix length: the address at 32/128, else the network. */
export function targetOf(address: string, family: Family, prefix: number): string {
  if (prefix >= FULL_PREFIX[family]) return address;
  if (family === 4) {
    const n = address.split('.').reduce((a, o) => a * 256 + Number(o), 0);
    const size = 2 ** (32 - prefix);
    const base = Math.floor(n / size) * size;
    return `${[24, 16, 8, 0].map((s) => Math.floor(base / 2 ** s) % 256).join('.')}/${prefix}`;
  }
  return `${maskV6(address, prefix)}/${prefix}`;
}

/**
 * The network address of a canonical IPv6 address, in RFC 5952 form (lower case, no leading
 * zeros, the longest run of two or more zero groups as `::`, the first on a tie). By hand: this
 * runs per match of a rule with a ban prefix, and ip-address's parser costs several times more.
 */
function maskV6(address: string, prefix: number): string {
  if (address.includes('.')) {
    // Never a canonical address (parseAddress writes no dotted quad in IPv6): ip-address only here,
    // loaded when needed (the daemon does not load it: idle memory, issue 12).
    const { Address6 } = require('ip-address') as typeof import('ip-address');
    return new Address6(`${address}/${prefix}`).startAddress().correctForm();
  }
  const cut = address.indexOf('::');
  let groups: string[];
  if (cut < 0) groups = address.split(':');
  else {
    const head = cut === 0 ? [] : address.slice(0, cut).split(':');
    const tail = cut + 2 === address.length ? [] : address.slice(cut + 2).split(':');
    groups = [...head, ...new Array<string>(8 - head.length - tail.length).fill('0'), ...tail];
  }
  const n = groups.map((g, i) => {
    const bits = Math.max(0, Math.min(16, prefix - i * 16));
    return parseInt(g, 16) & (bits === 0 ? 0 : (0xffff << (16 - bits)) & 0xffff);
  });
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (n[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && n[j] === 0) j++;
    if (j - i > bestLen) (best = i), (bestLen = j - i);
    i = j;
  }
  const hex = n.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

export interface Network {
  /** canonical network address (host bits zero) */
  base: string;
  family: Family;
  prefix: number;
}

/** `2001:db8::/64` -> its parts; null for a single address or text that is not a canonical network. */
export function parseNetwork(text: string): Network | null {
  const slash = text.indexOf('/');
  if (slash < 0) return null;
  const a = parseAddress(text.slice(0, slash));
  const bits = text.slice(slash + 1);
  if (!a || !/^\d{1,3}$/.test(bits)) return null;
  const prefix = Number(bits);
  if (prefix > FULL_PREFIX[a.family] || text.slice(0, slash) !== a.address) return null;
  return { base: a.address, family: a.family, prefix };
}

/**
 * Text a user or a file gave for a target -> its canonical form: an address, or a network with its
 * host bits cleared (`2001:db8::5/64` -> `2001:db8::/64`; `/32` and `/128` are the address). null
 * when it is neither.
 */
export function canonicalTarget(text: string): { target: string; family: Family } | null {
  const slash = text.indexOf('/');
  const a = parseAddress(slash < 0 ? text : text.slice(0, slash));
  if (!a) return null;
  if (slash < 0) return { target: a.address, family: a.family };
  // An IPv4-mapped network is not worth the trouble here: the daemon never makes one.
  if (text.slice(0, slash).includes(':') && a.family === 4) return null;
  const bits = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(bits) || Number(bits) > FULL_PREFIX[a.family]) return null;
  return { target: targetOf(a.address, a.family, Number(bits)), family: a.family };
}

/** Is this target a network (not a single address)? */
export function isNetwork(target: string): boolean {
  return target.includes('/');
}

/** The family of a canonical target (a colon means IPv6: IPv4-mapped addresses are IPv4 already). */
export function familyOf(target: string): Family {
  return target.includes(':') ? 6 : 4;
}

/** Does `net` hold `address` (canonical, same family)? */
export function networkHas(net: Network, address: string): boolean {
  const b = new BlockList();
  const type = net.family === 4 ? 'ipv4' : 'ipv6';
  b.addSubnet(net.base, net.prefix, type);
  return b.check(address, type);
}

/**
 * Do two networks share an address? (One of them contains the other's base.) Used to keep a
 * network ban off an allowlisted or never-banned range.
 */
export function overlaps(a: Network, b: Network): boolean {
  if (a.family !== b.family) return false;
  const [wide, narrow] = a.prefix <= b.prefix ? [a, b] : [b, a];
  return networkHas(wide, narrow.base);
}


/** Addresses that stand for each range no one may ban (never-ban.ts): a network holding one is refused. */
const SPECIAL: readonly [string, Family][] = [['0.0.0.0', 4], ['127.0.0.1', 4], ['224.0.0.1', 4], ['255.255.255.255', 4], ['::', 6], ['::1', 6], ['ff02::1', 6]];

/**
 * Why a network must not be banned, or null: it lies in a range no one may ban (its base is
 * refused), holds such an address (loopback, the unspecified address...) or one of the host's own.
 */
export function networkRefusal(net: Network, never: { has(address: string, family: Family): string | null; ownAddresses(): string[] }): string | null {
  const base = never.has(net.base, net.family);
  if (base) return base;
  for (const [a, f] of SPECIAL) if (f === net.family && networkHas(net, a)) return never.has(a, f);
  for (const a of never.ownAddresses()) if (familyOf(a) === net.family && networkHas(net, a)) return 'own address';
  return null;
}
