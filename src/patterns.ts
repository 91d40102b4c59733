// CONTRACT (issue 3 implements): pattern files (tallow's JSON format).
import type { MatchGroup } from './journal';

export interface Pattern {
  /** `sshd.json#3`: file name and item index, used in logs as the reason. */
  name: string;
  ban: number;
  score: number;
  /** The pattern as written in the file. */
  source: string;
}

export interface PatternFile {
  name: string;          // e.g. 'sshd.json'
  path: string;          // where it was read from
  /** OR'ed groups, each group's terms AND'ed. */
  filter: MatchGroup[];
  patterns: Pattern[];
}

/** `file: item N: message`; the CLI exits 78. */
export class PatternError extends Error {
  readonly exitCode = 78;
}

/** Shipped directory first, then the administrator's: same name overrides, others add. All or nothing. */
export declare function loadPatternFiles(shippedDir: string, localDir: string): PatternFile[];
/** The shipped patterns directory (patterns/ beside the program). */
export declare function shippedPatternsDir(): string;
/** Journal match groups selecting every entry any file wants (union of filters). */
export declare function journalMatches(files: PatternFile[]): MatchGroup[];
/** Journal fields the matcher needs (MESSAGE plus every filter field). */
export declare function neededFields(files: PatternFile[]): string[];
