// The cheap look between full checks: a few held bans per set looked up through the backend's
// session (no process, no listing of a million elements). All of a set's sample missing means
// it was most likely flushed; the queue then compares the sets with the ledger and re-fills.
import type { Family } from '../address';
import { banKey, setName } from '../scope';
import type { FirewallBackend, KernelBan } from './backend';

/** A ban the firewall should hold: what the ledger knows (expiry in ms since epoch). */
export interface HeldBan {
  address: string;
  family: Family;
  expiry: number;
  /** Scope id; absent: '' (tallow's own sets). */
  scope?: string;
}

/** The set a held ban belongs in (one per family and scope). */
export function heldSet(b: { family: Family; scope?: string }): string {
  return setName(b.family, b.scope ?? '');
}

/** Held bans looked up per set. */
const SAMPLE = 3;

/** Up to SAMPLE held bans per set, not skipped and not about to expire, among the first 1,000: no full walk. */
export function sampleHeld(held: Iterable<HeldBan>, skip: (b: HeldBan) => boolean, now: number): HeldBan[] {
  const out: HeldBan[] = [];
  const n = new Map<string, number>();
  // Bounded: a set with few bans among a million of the others is not worth a walk every probe.
  let budget = 1000;
  for (const b of held) {
    if (--budget < 0) break;
    const set = heldSet(b);
    if (b.expiry <= now + 5000 || (n.get(set) ?? 0) >= SAMPLE || skip(b)) continue;
    out.push(b);
    n.set(set, (n.get(set) ?? 0) + 1);
  }
  return out;
}

/** Sets (heldSet names) whose every sampled ban is missing from the kernel (a missing set answers false). */
export async function missingSets(backend: FirewallBackend, sample: HeldBan[]): Promise<Set<string>> {
  const out = new Set<string>();
  if (!sample.length || !backend.present) return out;
  const found = await backend.present(sample.map((b) => ({ address: b.address, family: b.family, scope: b.scope ?? '' })));
  const seen = new Map<string, boolean>();
  sample.forEach((b, i) => {
    const set = heldSet(b);
    seen.set(set, (seen.get(set) ?? false) || found[i]);
  });
  for (const [set, any] of seen) if (!any) out.add(set);
  return out;
}

/**
 * Sets (heldSet names) that should hold some of these bans and hold none of them: emptied from
 * outside. `skip`: bans (banKey) whose change is still queued.
 */
export function emptiedSets(held: HeldBan[], kernel: KernelBan[], skip: (key: string) => boolean): Set<string> {
  const inKernel = new Set(kernel.map((k) => banKey(k.address, k.scope ?? '')));
  const any = new Map<string, boolean>();
  for (const b of held) {
    const key = banKey(b.address, b.scope ?? '');
    if (skip(key)) continue;
    const set = heldSet(b);
    any.set(set, (any.get(set) ?? false) || inKernel.has(key));
  }
  return new Set([...any].filter(([, found]) => !found).map(([set]) => set));
}
