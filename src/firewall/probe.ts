// The cheap look between full checks: a few held bans looked up through the backend's session
// (no process, no listing of a million elements). All of a family's sample missing means its set
// was most likely flushed; the queue then compares the set with the ledger and re-fills.
import type { Family } from '../address';
import type { FirewallBackend } from './backend';

/** A ban the firewall should hold: what the ledger knows (expiry in ms since epoch). */
export interface HeldBan {
  address: string;
  family: Family;
  expiry: number;
}

/** Held bans looked up per family. */
const SAMPLE = 3;

/** Up to SAMPLE held bans per family, not skipped and not about to expire, among the first 1,000: no full walk. */
export function sampleHeld(held: Iterable<HeldBan>, skip: (address: string) => boolean, now: number): HeldBan[] {
  const out: HeldBan[] = [];
  const n = { 4: 0, 6: 0 };
  // Bounded: a family with few bans among a million of the other is not worth a walk every probe.
  let budget = 1000;
  for (const b of held) {
    if (--budget < 0) break;
    if (b.expiry <= now + 5000 || n[b.family] >= SAMPLE || skip(b.address)) continue;
    out.push(b);
    n[b.family]++;
    if (n[4] >= SAMPLE && n[6] >= SAMPLE) break;
  }
  return out;
}

/** Families whose every sampled ban is missing from the kernel (a missing set answers false). */
export async function missingFamilies(backend: FirewallBackend, sample: HeldBan[]): Promise<Set<Family>> {
  const out = new Set<Family>();
  if (!sample.length || !backend.present) return out;
  const found = await backend.present(sample);
  for (const f of [4, 6] as Family[]) {
    const idx = sample.map((b, i) => (b.family === f ? i : -1)).filter((i) => i >= 0);
    if (idx.length && idx.every((i) => !found[i])) out.add(f);
  }
  return out;
}
