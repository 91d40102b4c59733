// The state file as a listener: any ban, unban or match (a record changed) makes a save due
// within SAVE_EVERY_MS (StateSaver throttles a flood into a few writes). The journal cursor alone
// moving is saved rarely: a restart then re-reads only a little, and re-reading is harmless.
import type { Listener, TallowEvent } from '../events';
import type { Metrics } from '../metrics';
import { STATE_VERSION, StateSaver, type State, type StateStore } from '../state';

const SAVE_EVERY_MS = 2000;
/** Even when nothing matched, the advancing cursor is saved this often. */
const CURSOR_SAVE_EVERY_MS = 60_000;

export class StateListener implements Listener {
  readonly name = 'state';
  readonly immediate = true;
  readonly wantsMatches = true;
  readonly maxBatch = Infinity;
  private readonly saver: StateSaver;
  private savedCursor: string | null;
  private lastCursorSave = 0;
  private stopped = false;
  /** ms since epoch of the last successful save */
  lastSave: number | null = null;

  constructor(
    readonly store: StateStore,
    snapshot: () => Omit<State, 'saved' | 'version'>,
    metrics: Metrics,
    onError: (message: string) => void,
    startCursor: string | null,
  ) {
    this.savedCursor = startCursor;
    this.saver = new StateSaver(
      store,
      () => {
        const s = snapshot();
        const saved = Date.now();
        this.savedCursor = s.cursor;
        this.lastSave = saved;
        return { version: STATE_VERSION, saved, ...s };
      },
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

  handle(_events: TallowEvent[]): void {
    if (!this.stopped) this.saver.markDirty();
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

  /** Stop: one last save of everything. */
  async close(): Promise<void> {
    this.stopped = true;
    this.saver.markDirty();
    await this.saver.flush();
  }
}
