// Networks and addresses to test canonical addresses against (the allowlist, the addresses never
// banned). net.BlockList did this, but its check() builds a SocketAddress per call: ~8 us, about a
// fifth of a flood's CPU with history off (bench/README.md). Here an address is parsed once into
// numbers and looked up per prefix length: one Set lookup per distinct prefix in the list.
import type { Family } from './address';

/** The 32-bit value of a dotted quad net.isIP accepted (canonical: no leading zeros), or -1. */
function v4(text: string): number {
  let n = 0;
  let cur = 0;
  let parts = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46) {
      n = n * 256 + cur;
      cur = 0;
      parts++;
    } else if (c >= 48 && c <= 57) cur = cur * 10 + (c - 48);
    else return -1;
  }
  return parts === 3 ? n * 256 + cur : -1;
}

/**
 * The 128 bits of an RFC 5952 (or any valid) IPv6 text as 8 groups, into `out`; false if not IPv6 text.
 * Not address.ts's groups6: that one trusts a text net.isIP accepted, and net.isIP's IPv6 check
 * made the allowlist 3x slower (bench/allowlist: 25 -> 80 ms per 100,000); this one checks as it goes.
 */
function v6(text: string, out: Uint16Array): boolean {
  let n = 0;
  let gap = -1;
  let cur = 0;
  let digits = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 58) {
      if (digits) out[n++] = cur;
      cur = 0;
      digits = 0;
      if (text.charCodeAt(i + 1) === 58) {
        if (gap >= 0) return false;
        gap = n;
        i++;
      }
      if (n > 8) return false;
    } else if (c === 46) {
      // A dotted quad as the last 32 bits (::ffff:a.b.c.d and the like).
      const start = text.lastIndexOf(':', i) + 1;
      const q = v4(text.slice(start));
      if (q < 0 || n > 6) return false;
      out[n++] = Math.floor(q / 65536);
      out[n++] = q % 65536;
      digits = 0;
      break;
    } else {
      const d = c >= 48 && c <= 57 ? c - 48 : (c | 32) >= 97 && (c | 32) <= 102 ? (c | 32) - 87 : -1;
      if (d < 0 || digits === 4) return false;
      cur = cur * 16 + d;
      digits++;
    }
  }
  if (digits) out[n++] = cur;
  if (gap >= 0) {
    if (n > 7) return false;
    const move = n - gap;
    for (let k = 0; k < move; k++) out[7 - k] = out[n - 1 - k];
    for (let k = gap; k < 8 - move; k++) out[k] = 0;
  } else if (n !== 8) return false;
  return true;
}

const groups = new Uint16Array(8);

/** The key of an IPv6 address (in `groups`) kept to `prefix` bits: the groups as text, the rest cut off. */
function key6(g: Uint16Array, prefix: number): string {
  let k = '';
  for (let i = 0; i * 16 < prefix; i++) {
    const bits = Math.min(16, prefix - i * 16);
    k += `${g[i] & ((0xffff << (16 - bits)) & 0xffff)},`;
  }
  return k;
}

export class AddressSet {
  /** prefix length -> the networks of that length (IPv4: masked 32-bit values) */
  private readonly nets4 = new Map<number, Set<number>>();
  private readonly nets6 = new Map<number, Set<string>>();
  /** Prefix lengths, longest first (a single address is found at the first lookup). */
  private lengths4: number[] = [];
  private lengths6: number[] = [];

  /** `address` canonical or not, `prefix` 0-32 or 0-128; throws on text that is not an address of `family`. */
  add(address: string, prefix: number, family: Family): void {
    if (family === 4) {
      const n = v4(address);
      if (n < 0 || !(prefix >= 0 && prefix <= 32)) throw new Error(`not an IPv4 network: ${address}/${prefix}`);
      let s = this.nets4.get(prefix);
      if (!s) this.nets4.set(prefix, (s = new Set()));
      s.add(mask4(n, prefix));
      this.lengths4 = [...this.nets4.keys()].sort((a, b) => b - a);
    } else {
      const g = new Uint16Array(8);
      if (!v6(address, g) || !(prefix >= 0 && prefix <= 128)) throw new Error(`not an IPv6 network: ${address}/${prefix}`);
      let s = this.nets6.get(prefix);
      if (!s) this.nets6.set(prefix, (s = new Set()));
      s.add(key6(g, prefix));
      this.lengths6 = [...this.nets6.keys()].sort((a, b) => b - a);
    }
  }

  /** Whether `address` (text of `family`) is in one of the networks; false for text that is not an address. */
  has(address: string, family: Family): boolean {
    if (family === 4) {
      if (this.lengths4.length === 0) return false;
      const n = v4(address);
      if (n < 0) return false;
      for (const p of this.lengths4) if (this.nets4.get(p)!.has(mask4(n, p))) return true;
      return false;
    }
    if (this.lengths6.length === 0 || !v6(address, groups)) return false;
    for (const p of this.lengths6) if (this.nets6.get(p)!.has(key6(groups, p))) return true;
    return false;
  }
}

/** `n` kept to its first `prefix` bits (0 keeps nothing). Unsigned: 2^32 arithmetic, no sign bit. */
function mask4(n: number, prefix: number): number {
  if (prefix === 0) return 0;
  const span = 2 ** (32 - prefix);
  return n - (n % span);
}
