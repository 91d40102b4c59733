// The workload of bench/compare: documentation addresses only (RFC 5737, RFC 3849) and sshd's
// exact wording for failed passwords (OpenSSH auth.c: "Failed password for [invalid user ]U from
// A port P ssh2").

/** Canonical (RFC 5952) IPv6 address number i of a /48 `net` (0x1000..0xffff): 2001:db8:NET:X:0:0:0:1. */
function v6(net: number, i: number): string {
  // Hextets 3 and 4 are never 0, so the only zero run is hextets 5-7: "::" sits there.
  return `2001:db8:${net.toString(16)}:${(i + 1).toString(16)}::1`;
}

/**
 * Attackers for the flood: 198.51.100.2-254 and 203.0.113.2-254 first, then IPv6 (10,000+
 * distinct documentation IPv4 addresses do not exist).
 */
export function attackers(m: number): string[] {
  const out: string[] = [];
  // From .2: .1 is the sandbox server's own address, which the daemon rightly never bans.
  for (const net of ['198.51.100', '203.0.113']) for (let h = 2; h <= 254 && out.length < m; h++) out.push(`${net}.${h}`);
  for (let i = 0; out.length < m; i++) out.push(v6(0x1000 + (i >> 16), i & 0xffff));
  return out;
}

/** Addresses that fail fewer times than the threshold: 192.0.2.100-254, then IPv6 (another /48). */
export function belowThreshold(n: number): string[] {
  const out: string[] = [];
  for (let h = 100; h <= 254 && out.length < n; h++) out.push(`192.0.2.${h}`);
  for (let i = 0; out.length < n; i++) out.push(v6(0x3000, i));
  return out;
}

/** Fresh addresses for the latency rounds, v4 and v6 alternating (192.0.2.20-99, 2001:db8:4000::/48). */
export function latencyAddress(round: number): string {
  return round % 2 === 0 ? `192.0.2.${20 + (round >> 1)}` : v6(0x4000, round);
}

const USERS = ['admin', 'test', 'oracle', 'ubuntu', 'user', 'postgres', 'git'];

/** sshd's line for failure number k of address `addr` (n: any number, picks port and user). */
export function failureLine(addr: string, n: number, k: number): string {
  const port = 1024 + ((n * 7919 + k * 131) % 64000);
  // Half the failures are for root (a valid user), half for invalid users, as on real servers.
  if ((n + k) % 2 === 0) return `Failed password for root from ${addr} port ${port} ssh2`;
  return `Failed password for invalid user ${USERS[(n + k) % USERS.length]} from ${addr} port ${port} ssh2`;
}

/** A small deterministic PRNG (mulberry32), so every daemon sees the very same lines. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * The flood: `failures` rounds; in each, every attacker fails once and every below-threshold
 * address too (in its first `failures - 1` rounds), in a shuffled order. The last line of every
 * attacker is in the last round.
 */
export function floodPlan(att: string[], below: string[], failures: number): string[] {
  const r = rng(0x7a110);
  const lines: string[] = [];
  for (let k = 0; k < failures; k++) {
    const round: string[] = [];
    att.forEach((a, n) => round.push(failureLine(a, n, k)));
    if (k < failures - 1) below.forEach((a, n) => round.push(failureLine(a, n + att.length, k)));
    for (let i = round.length - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [round[i], round[j]] = [round[j], round[i]];
    }
    lines.push(...round);
  }
  return lines;
}
