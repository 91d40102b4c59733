// CONTRACT (issue 6 implements): what survives a restart.
import type { TrackerRecord } from './tracker';
import type { Family } from './address';

export interface SavedBan {
  address: string;
  family: Family;
  /** ms since epoch */
  expiry: number;
  pattern: string | null;
}

export interface State {
  version: 1;
  /** ms since epoch when written */
  saved: number;
  cursor: string | null;
  records: TrackerRecord[];
  bans: SavedBan[];
}

export interface StateLoad {
  state: State | null;
  /** Set when the file was unreadable/corrupt: what was wrong, and where it was moved aside. */
  problem?: string;
}

export declare class StateStore {
  constructor(dir: string);
  readonly file: string;
  /** Missing file: {state:null}. Corrupt: renamed aside, {state:null, problem}. Never throws for content. */
  load(): StateLoad;
  /** Atomic (temp file, fsync, rename, fsync dir). */
  save(state: State): Promise<void>;
}
