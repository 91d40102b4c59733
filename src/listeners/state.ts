// The state file as a listener: any ban, unban or match (a record changed) makes a save due
// within SAVE_EVERY_MS (StateSaver throttles a flood into a few writes). A save appends only what
// changed since the last one to state.log (the records the scoring marked, the bans the events
// named, as they are now or gone); a whole snapshot is written when the log has outgrown the last
// one, when the log cannot be appended to (none yet, torn, a failed save), so the work stays
// linear in the changes. The journal cursor alone moving is saved rarely: a restart then re-reads
// only a little, and re-reading is harmless.
import type { Listener, TallowEvent } from '../events';
import type { Ban, Ledger } from '../ledger';
import type { Metrics } from '../metrics';
import type { Scoring } from '../scoring';
import { STATE_VERSION, StateSaver, type SavedBan, type SavedRecord, type State, type StateDelta, type StateStore } from '../state';

const SAVE_EVERY_MS = 2000;
/** Even when nothing matched, the advancing cursor is saved this often. */
const CURSOR_SAVE_EVERY_MS = 60_000;

/** What the state file is made of: the daemon's scoring and ledger, and the journal position. */
export interface StateSource {
  cursor(): string | null;
  readonly scoring: Pick<Scoring, 'records' | 'get' | 'trackChanges' | 'takeChanged'>;
  readonly ledger: Pick<Ledger, 'values' | 'get'>;
}

export class StateListener implements Listener {
  readonly name = 'state';
  readonly immediate = true;
  readonly wantsMatches = true;
  readonly maxBatch = Infinity;
  private readonly saver: StateSaver;
  private savedCursor: string | null;
  private lastCursorSave = 0;
  private stopped = false;
  /** Bans banned or lifted since the last save, by scope and target. */
  private touched = new Map<string, Ban>();
  /** ms since epoch of the last successful save */
  lastSave: number | null = null;

  constructor(
    readonly store: StateStore,
    private readonly source: StateSource,
    metrics: Metrics,
    onError: (message: string) => void,
    startCursor: string | null,
  ) {
    this.savedCursor = startCursor;
    source.scoring.trackChanges();
    this.saver = new StateSaver(
      store,
      () => this.build(),
      SAVE_EVERY_MS,
      (msg) => {
        metrics.stateSaveFailures++;
        onError(msg);
      },
      (seconds) => {
        metrics.stateSaves++;
        metrics.stateSaveSeconds = seconds;
        metrics.stateBytes = store.lastBytes;
      },
    );
  }

  handle(events: TallowEvent[]): void {
    if (this.stopped) return;
    for (const e of events) {
      // Restored bans are the state file's own: nothing new to write.
      if ((e.kind === 'ban' && e.cause !== 'restored') || e.kind === 'unban') this.touched.set(`${e.ban.scope}\0${e.ban.address}`, e.ban);
    }
    this.saver.markDirty();
  }

  /** After each journal batch and on the prune timer: a cursor that moved is saved now and then. */
  cursorMoved(cursor: string | null, now: number): void {
    if (this.stopped || cursor === this.savedCursor || now - this.lastCursorSave < CURSOR_SAVE_EVERY_MS) return;
    this.lastCursorSave = now;
    this.saver.markDirty();
  }

  /** Records changed without an event (pruned, evicted). */
  changed(): void {
    if (!this.stopped) this.saver.markDirty();
  }

  /** Write now what is due (tests, benches); waits for a save already running. */
  async saveNow(): Promise<void> {
    await this.saver.flush();
  }

  /** Stop: one last save (of what changed). */
  async close(): Promise<void> {
    this.stopped = true;
    this.saver.markDirty();
    await this.saver.flush();
  }

  /** What a save writes, taken when it starts: what changed, or everything. */
  private build(): State | StateDelta {
    const { scoring, ledger } = this.source;
    const saved = Date.now();
    const cursor = this.source.cursor();
    this.savedCursor = cursor;
    this.lastSave = saved;
    const changed = scoring.takeChanged();
    const touched = this.touched;
    this.touched = new Map();
    if (!this.store.canAppend || this.store.wantsCompaction) {
      return { version: STATE_VERSION, saved, cursor, records: [...scoring.records()], bans: [...ledger.values()] };
    }
    const records: SavedRecord[] = [];
    const recordsGone: StateDelta['recordsGone'] = [];
    const seen = new Set<string>();
    for (const r of changed) {
      const key = `${r.pool}\0${r.address}`;
      if (seen.has(key)) continue; // an unbanned record and the new one for the same target
      seen.add(key);
      const now = scoring.get(r.address, r.pool);
      if (now) records.push(now);
      else recordsGone.push({ address: r.address, pool: r.pool });
    }
    const bans: SavedBan[] = [];
    const bansGone: StateDelta['bansGone'] = [];
    for (const b of touched.values()) {
      const now = ledger.get(b.address, b.scope);
      if (now) bans.push(now);
      else bansGone.push({ address: b.address, scope: b.scope });
    }
    return { saved, cursor, records, recordsGone, bans, bansGone };
  }
}
