// CONTRACT (issue 3 implements): entry -> match. No journal or firewall calls.
import type { JournalEntry } from './journal';
import type { PatternFile, Pattern } from './patterns';
import type { Address } from './address';

export interface Match extends Address {
  pattern: Pattern;
  /** Journal realtime of the entry, microseconds. */
  realtime: number;
}

export declare class Matcher {
  constructor(files: PatternFile[]);
  /** The first pattern (of the files whose filter selects the entry) that matches, with a valid address. */
  match(entry: JournalEntry): Match | null;
  readonly stats: { entries: number; matches: number; invalidAddresses: number };
}
