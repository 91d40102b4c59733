// Keeping the kernel's sets as the ledger says, for the queue (src/firewall/index.ts): sets or
// rules gone (a firewall reload, a flush by hand) are re-created and every ban still held is
// queued again; a set that exists but holds none of the bans meant for it was flushed and is
// re-filled. Single elements an administrator removed stay removed.
import type { Metrics } from '../metrics';
import { banKey } from '../scope';
import type { FirewallBackend, Logger } from './backend';
import { FirewallError } from './choose';
import { emptiedSets, heldSet, missingSets, sampleHeld, type HeldBan } from './probe';
import type { Pending } from './send';

/** What the repair sees of the queue. */
export interface QueueView {
  readonly backend: FirewallBackend;
  readonly log: Logger;
  readonly metrics: Metrics | undefined;
  /** The ledger's bans. */
  held(): Iterable<HeldBan>;
  /** A set is set up for this scope. */
  holds(scope: string): boolean;
  /** A change of this ban (banKey) waits to be sent. */
  queued(key: string): boolean;
  /** The kernel refused this ban's last change. */
  refused(key: string): boolean;
  queue(key: string, p: Pending): void;
  /** After a set-up: the backend's word on the scopes it holds. */
  syncScopes(): void;
}

/** The ledger's bans still running in scopes held, minus those the kernel refused. */
export function liveHeld(q: QueueView, now: number): HeldBan[] {
  const out: HeldBan[] = [];
  for (const b of q.held()) {
    const scope = b.scope ?? '';
    if (b.expiry > now && q.holds(scope) && !q.refused(banKey(b.address, scope))) out.push(b);
  }
  return out;
}

/** Sets (heldSet names) whose sampled held bans are all missing from the kernel. */
export function sampledMissing(q: QueueView, now: number): Promise<Set<string>> {
  const skip = (b: HeldBan) => {
    const key = banKey(b.address, b.scope ?? '');
    return !q.holds(b.scope ?? '') || q.queued(key) || q.refused(key);
  };
  return missingSets(q.backend, sampleHeld(q.held(), skip, now));
}

/**
 * The full check. The sets are listed only when `suspect` (sampled bans were missing, or a
 * reload was heard), or when the backend cannot look bans up cheaply.
 */
export async function repair(q: QueueView, suspect: boolean): Promise<void> {
  const { backend, log, metrics } = q;
  if (!(await backend.check())) {
    log.warn('firewall sets or rules missing (flushed or reloaded from outside?); re-creating them', { backend: backend.name });
    await backend.setup();
    q.syncScopes();
    if (!(await backend.check())) throw new FirewallError('sets or rules still missing after set-up');
    if (metrics) metrics.firewallRepairs++;
    refill(q, liveHeld(q, Date.now()), null);
  } else if (!backend.present || suspect || (await sampledMissing(q, Date.now())).size) {
    const held = liveHeld(q, Date.now());
    if (held.length) {
      const emptied = emptiedSets(held, await backend.list(), (key) => q.queued(key));
      if (emptied.size) {
        log.warn('firewall set emptied from outside; re-filling it', { backend: backend.name, sets: [...emptied].join(',') });
        if (metrics) metrics.firewallRepairs++;
        refill(q, held, emptied);
      }
    }
  }
}

/** Queues the held bans of these sets (heldSet names; null: every set) again. */
function refill(q: QueueView, held: HeldBan[], sets: Set<string> | null): void {
  let n = 0;
  for (const b of held) {
    const scope = b.scope ?? '';
    const key = banKey(b.address, scope);
    if ((sets && !sets.has(heldSet(b))) || q.queued(key)) continue;
    q.queue(key, { add: true, address: b.address, family: b.family, scope, expiry: b.expiry });
    n++;
  }
  if (n) q.log.info('re-filling bans into the firewall', { count: String(n) });
}
