// Events from the core (matches from the matcher, bans and unbans from the ledger) to the
// listeners (firewall, log, state, and later history, actions, fleet). Each listener has its own
// queue and its own back-off: a slow, hanging or failing listener holds back only itself, never
// the kernel or another listener, and an event handed to it is delivered (in order) or, past the
// listener's own bound, counted as dropped.
import type { Family } from './address';
import type { LedgerEvent } from './ledger';
import { errText } from './limits';
import type { Logger } from './log';

export interface MatchEvent {
  kind: 'match';
  address: string;
  family: Family;
  /** `sshd.json#3` */
  pattern: string;
  /** pattern file name, `sshd.json` */
  file: string;
  /** the rule whose pattern matched (rules per service) */
  rule?: string;
  /** the rule says `no_log`: not stored in the history */
  noLog?: boolean;
  /** ms since epoch */
  at: number;
}

/**
 * A match of a notify rule (`"action": "notify"`, issue 16.4): a successful login, reported to
 * the actions and the history, never scored or banned. The strings come from the log line
 * (`user` is the client's, as sshd wrote it): '' when the pattern has no such group.
 */
export interface NotifyEvent {
  kind: 'notify';
  rule: string;
  address: string;
  family: Family;
  /** ms since epoch: when the program logged it */
  at: number;
  user: string;
  method: string;
  fingerprint: string;
  /** `sshd-logins.json#1` */
  pattern: string;
  /** the address is allowlisted (and the rule reports such addresses) */
  allowlisted: boolean;
}

export type TallowEvent = LedgerEvent | MatchEvent | NotifyEvent;

/** The contract every listener keeps: small, like a firewall backend's verbs. */
export interface Listener {
  readonly name: string;
  /** Match events are many: only listeners that ask get them. */
  readonly wantsMatches?: boolean;
  /** Only the events this says yes to are handed over (an action: its rules' events). Default: all. */
  wants?(event: TallowEvent): boolean;
  /** Events are held for this listener up to this many; more are dropped and counted (default: no bound). */
  readonly maxQueue?: number;
  /** Most events handed over in one call (default 1000). */
  readonly maxBatch?: number;
  /** Wait this many ms after the first queued event before handing over (a store: fewer, larger transactions); default a tick. */
  readonly gatherMs?: number;
  /**
   * Cheap, synchronous, in-process (the firewall queue, the log, counters): handed each event at
   * once, inside emit(), so a ban reaches the firewall queue and the log in the same tick as the
   * decision. A throw falls back to the queue and its back-off like any other failure.
   */
  readonly immediate?: boolean;
  /** Handle events in order. A throw or a rejection means: not handled, retry the same events later. */
  handle(events: TallowEvent[]): void | Promise<void>;
  /** Resolves when what it was handed has had its effect (the firewall: in the kernel). */
  flush?(): Promise<void>;
  close?(): Promise<void>;
}

export interface DispatcherOptions {
  /** First retry delay after a failure (ms), doubling up to retryMaxMs. */
  retryBaseMs?: number;
  retryMaxMs?: number;
}

export interface ListenerStats {
  name: string;
  queued: number;
  delivered: number;
  failures: number;
  dropped: number;
}

class Queue {
  events: TallowEvent[] = [];
  running = false;
  scheduled = false;
  retry: NodeJS.Timeout | null = null;
  /** the wait of a listener with gatherMs */
  gather: NodeJS.Timeout | null = null;
  streak = 0;
  delivered = 0;
  failures = 0;
  dropped = 0;
  idle: (() => void)[] = [];

  constructor(readonly listener: Listener) {}
}

export class Dispatcher {
  private readonly queues: Queue[];
  private readonly opts: Required<DispatcherOptions>;
  private closed = false;

  constructor(
    listeners: Listener[],
    private readonly log: Logger,
    opts: DispatcherOptions = {},
  ) {
    this.queues = listeners.map((l) => new Queue(l));
    this.opts = { retryBaseMs: 1000, retryMaxMs: 60_000, ...opts };
  }

  get listeners(): readonly Listener[] {
    return this.queues.map((q) => q.listener);
  }

  /** Hand one event to every listener that wants it. Never blocks, never throws. */
  emit(event: TallowEvent): void {
    if (this.closed) return;
    for (const q of this.queues) {
      if (event.kind === 'match' && !q.listener.wantsMatches) continue;
      if (q.listener.wants && !q.listener.wants(event)) continue;
      if (q.events.length >= (q.listener.maxQueue ?? Infinity)) {
        if (q.dropped++ === 0 || q.dropped % 10_000 === 0) {
          this.log.error(`listener ${q.listener.name}: queue full, events dropped`, { dropped: String(q.dropped) });
        }
        continue;
      }
      if (q.listener.immediate && q.events.length === 0 && !q.running && !q.retry) {
        try {
          q.listener.handle([event]);
          q.delivered++;
          continue;
        } catch (e) {
          q.events.push(event);
          this.failed(q, e);
          continue;
        }
      }
      q.events.push(event);
      this.schedule(q);
    }
  }

  stats(): ListenerStats[] {
    return this.queues.map((q) => ({ name: q.listener.name, queued: q.events.length, delivered: q.delivered, failures: q.failures, dropped: q.dropped }));
  }

  /**
   * Resolves once every listener has taken what was emitted so far and flushed it, or after
   * `timeoutMs` for listeners that are failing or hanging (they keep their events).
   */
  async flush(timeoutMs = 10_000): Promise<void> {
    const each = this.queues.map(async (q) => {
      if (q.events.length || q.running || q.scheduled) await new Promise<void>((r) => q.idle.push(r));
      await q.listener.flush?.();
    });
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(each), new Promise<void>((r) => (timer = setTimeout(r, timeoutMs)))]);
    if (timer) clearTimeout(timer);
  }

  /** Stop delivering; close every listener (each gets its own chance, failures logged). */
  async close(): Promise<void> {
    this.closed = true;
    for (const q of this.queues) {
      if (q.retry) clearTimeout(q.retry);
      q.retry = null;
      if (q.gather) clearTimeout(q.gather);
      q.gather = null;
      if (q.events.length) this.log.warn(`listener ${q.listener.name}: closing with events not delivered`, { count: String(q.events.length) });
      for (const r of q.idle.splice(0)) r();
      try {
        await q.listener.close?.();
      } catch (e) {
        this.log.error(`listener ${q.listener.name}: close failed: ${errText(e)}`);
      }
    }
  }

  private schedule(q: Queue): void {
    if (q.running || q.retry || this.closed) return;
    // A listener that gathers (gatherMs) is handed a full batch at once, not after the wait.
    const full = q.events.length >= (q.listener.maxBatch ?? 1000);
    if (q.scheduled && !(full && q.gather)) return;
    if (q.gather) clearTimeout(q.gather);
    q.gather = null;
    q.scheduled = true;
    const go = () => {
      q.scheduled = false;
      q.gather = null;
      void this.drain(q);
    };
    // A tick later: everything emitted in this batch of journal entries goes over in one call.
    if (q.listener.gatherMs && !full) q.gather = setTimeout(go, q.listener.gatherMs);
    else setImmediate(go);
  }

  /** The events stay queued; the next try waits 1, 2, 4... s (capped). */
  private failed(q: Queue, e: unknown): void {
    q.failures++;
    q.streak++;
    const delay = Math.min(this.opts.retryMaxMs, this.opts.retryBaseMs * 2 ** (q.streak - 1));
    this.log.error(`listener ${q.listener.name} failed; will retry`, { error: errText(e), queued: String(q.events.length), retry_in_ms: String(delay) });
    q.retry = setTimeout(() => {
      q.retry = null;
      this.schedule(q);
    }, delay);
    q.retry.unref();
  }

  private async drain(q: Queue): Promise<void> {
    q.running = true;
    while (q.events.length && !this.closed) {
      const n = Math.min(q.events.length, q.listener.maxBatch ?? 1000);
      const batch = q.events.slice(0, n);
      try {
        const r = q.listener.handle(batch);
        if (r) await r;
      } catch (e) {
        q.running = false;
        this.failed(q, e);
        return;
      }
      q.events.splice(0, n);
      q.delivered += n;
      if (q.streak) this.log.info(`listener ${q.listener.name} working again`);
      q.streak = 0;
    }
    q.running = false;
    if (!q.events.length) for (const r of q.idle.splice(0)) r();
  }
}
