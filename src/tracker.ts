// CONTRACT (issue 3 implements): records and scores -> decisions. No journal or firewall calls.
import type { Family } from './address';
import type { Match } from './matcher';

export interface TrackerRecord {
  address: string;
  family: Family;
  score: number;
  count: number;
  /** ms since epoch */
  first: number;
  last: number;
  banned: boolean;
  /** ms since epoch; 0 when no ban (also set by instant bans, which leave banned=false) */
  banExpiry: number;
  /** name of the pattern that caused the current ban */
  pattern: string | null;
}

export type Decision =
  | {
      action: 'ban';
      address: string;
      family: Family;
      seconds: number;
      score: number;
      count: number;
      pattern: string;
      reason: 'threshold' | 'instant' | 'manual';
    }
  | { action: 'unban'; address: string; family: Family; reason: 'manual' };

export interface TrackerOptions {
  threshold: number;
  /** seconds */
  expires: number;
  maxRecords: number;
  /** addresses never scored or banned */
  isAllowed(address: string, family: Family): boolean;
}

export declare class Tracker {
  constructor(options: TrackerOptions);
  /** Score one match at time `now` (ms); returns the decisions it causes (usually none). */
  observe(match: Match, now: number): Decision[];
  /** Drop records unseen for `expires`, banned ones after expires/2. Returns how many were dropped. */
  prune(now: number): number;
  /** Manual ban/unban (control socket); unban also forgets the record. */
  ban(address: string, family: Family, seconds: number, now: number): Decision[];
  unban(address: string, family: Family): Decision[];
  get(address: string): TrackerRecord | undefined;
  records(): IterableIterator<TrackerRecord>;
  /** Put back a saved record (state restore). */
  restore(record: TrackerRecord): void;
  /** New threshold/expires/cap after a reload; records are kept. */
  configure(options: TrackerOptions): void;
  readonly size: number;
  readonly evicted: number;
}
