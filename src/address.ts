// Address parsing and normalisation. One canonical text per address, so the tracker, the allowlist
// and the firewall sets all agree on what "the same address" is.
import { isIP } from 'node:net';

export type Family = 4 | 6;
export interface Address {
  /** Canonical text: dotted quad for IPv4 (IPv4-mapped IPv6 becomes IPv4), RFC 5952 for IPv6. */
  address: string;
  family: Family;
}

/** null when `text` is not a single valid IPv4/IPv6 address (no CIDR, no port, no zone). */
export function parseAddress(text: string): Address | null {
  // net.isIP is the fast gate (no allocation) and already refuses CIDR, ports, leading zeros in
  // IPv4 and surrounding space; a dotted quad it accepts is its own canonical form.
  const kind = isIP(text);
  if (kind === 4) return { address: text, family: 4 };
  if (kind !== 6) return null;
  if (text.includes('%')) return null; // a zone index names an interface, not a remote host
  groups6(text);
  return canonical6();
}

/** The eight groups of the address being parsed (one at a time: no allocation per address). */
const g = new Uint16Array(8);

/**
 * Fills `g` from an IPv6 text net.isIP accepted (so: at most one `::`, hex groups of 1-4 digits,
 * an optional dotted quad at the end), in one pass.
 */
function groups6(text: string): void {
  let n = 0;
  let gap = -1;
  let cur = 0;
  let digits = 0;
  let wordStart = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 58 /* : */) {
      if (digits) g[n++] = cur;
      cur = 0;
      digits = 0;
      if (text.charCodeAt(i + 1) === 58) {
        gap = n;
        i++;
      }
      wordStart = i + 1;
    } else if (c === 46 /* . */) {
      // The last 32 bits as a dotted quad: the rest of the text.
      const q = text.slice(wordStart).split('.');
      g[n++] = (Number(q[0]) << 8) | Number(q[1]);
      g[n++] = (Number(q[2]) << 8) | Number(q[3]);
      digits = 0;
      break;
    } else {
      cur = cur * 16 + (c <= 57 ? c - 48 : (c | 32) - 87); // 0-9, a-f, A-F
      digits++;
    }
  }
  if (digits) g[n++] = cur;
  if (gap >= 0) {
    const move = n - gap;
    for (let k = 0; k < move; k++) g[7 - k] = g[n - 1 - k];
    for (let k = gap; k < 8 - move; k++) g[k] = 0;
  }
}

/**
 * RFC 5952 text of `g` (lower case, no leading zeros, the longest run of two or more zero groups
 * as `::`, the first of equal runs), except that ::ffff:0:0/96 (IPv4-mapped) is the IPv4 address.
 * The same texts ip-address 10's correctForm() gave (test/unit/address.test.ts compares them).
 */
function canonical6(): Address {
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return { address: `${g[6] >> 8}.${g[6] & 255}.${g[7] >> 8}.${g[7] & 255}`, family: 4 };
  }
  let best = -1;
  let bestLen = 1; // a single zero group is written out, never `::`
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i + 1;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  let out = '';
  for (let i = 0; i < 8; i++) {
    if (i === best) {
      out += '::';
      i += bestLen - 1;
      continue;
    }
    if (out !== '' && !out.endsWith(':')) out += ':';
    out += g[i].toString(16);
  }
  return { address: out, family: 6 };
}
