// One batch of the queue (src/firewall/index.ts) through the backend: in slices, each ban with
// its remaining time, and a slice the kernel refuses in part halved until the refused elements
// are alone, so one element the kernel cannot hold never holds back the others.
import { RefusedError, type BanEntry, type BanRemoval, type FirewallBackend } from './backend';
import type { Target } from './scopes';

/** A change not yet sent: the latest decision about a ban (by banKey). */
export type Pending = Target & ({ add: true; expiry: number } | { add: false });
export type Op = [key: string, pending: Pending];

export interface SendEvents {
  /** These reached the kernel. */
  landed(ops: Op[]): void;
  /** The kernel refused this one alone (dropped: not retried). */
  refused(op: Op, why: string): void;
  /** Nothing to send: a ban that expired while queued. */
  expired(key: string): void;
}

/** Elements per request to the tool. */
const SLICE = 20_000;

/**
 * Sends one batch; each ban carries its REMAINING time (a retried ban does not get extended).
 * Errors other than refused elements go up: the caller retries the batch.
 */
export async function sendBatch(backend: FirewallBackend, batch: Map<string, Pending>, events: SendEvents, now = Date.now()): Promise<void> {
  const ops: Op[] = [];
  for (const [key, p] of batch) {
    if (!p.add || p.expiry > now) ops.push([key, p]);
    else events.expired(key);
  }
  // Slices keep each request to the tool well inside its timeout (a million bans at once took
  // longer than the 120 s a request may take) and let a failure lose only a slice's progress.
  for (let i = 0; i < ops.length; i += SLICE) await sendOps(backend, ops.slice(i, i + SLICE), now, events);
}

async function sendOps(backend: FirewallBackend, ops: Op[], now: number, events: SendEvents): Promise<void> {
  const add: BanEntry[] = [];
  const remove: BanRemoval[] = [];
  for (const [, p] of ops) {
    if (p.add) add.push({ address: p.address, family: p.family, scope: p.scope, seconds: Math.max(1, Math.ceil((p.expiry - now) / 1000)) });
    else remove.push({ address: p.address, family: p.family, scope: p.scope });
  }
  try {
    await backend.apply(add, remove);
  } catch (e) {
    if (!(e instanceof RefusedError)) throw e;
    if (ops.length > 1) {
      const mid = ops.length >>> 1;
      await sendOps(backend, ops.slice(0, mid), now, events);
      await sendOps(backend, ops.slice(mid), now, events);
      return;
    }
    events.refused(ops[0], e.message);
    return;
  }
  events.landed(ops);
}
