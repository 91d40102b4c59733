// CONTRACT (issue 2 implements): typed face of the sd-journal addon.
// Entries flow one way: Journal -> batches of JournalEntry -> matcher.

/** One journal entry, with only the fields that were asked for. */
export interface JournalEntry {
  /** sd_journal_get_cursor() */
  cursor: string;
  /** sd_journal_get_realtime_usec(), microseconds since the epoch */
  realtime: number;
  /** Requested fields present in this entry, value decoded as UTF-8 (invalid bytes -> U+FFFD), capped in size. */
  fields: Record<string, string>;
}

/** Terms `FIELD=value`: different fields AND'ed, the same field OR'ed (sd-journal's rule). */
export type MatchGroup = string[];

export interface JournalOptions {
  /** Read journal files from this directory (journalctl -D). */
  directory?: string;
  /** Read exactly these journal files. */
  files?: string[];
  /** Neither: the local system journal (SD_JOURNAL_LOCAL_ONLY). */
  /** Fields to return for each entry, e.g. ['MESSAGE', '_EXE', 'SYSLOG_IDENTIFIER', '_UID', '_PID']. */
  fields: string[];
  /** Groups OR'ed together (sd_journal_add_disjunction between groups). None: every entry. */
  matches?: MatchGroup[];
  /** Cap on each returned field value, in bytes. */
  maxFieldSize?: number;
  /** Entries per batch while catching up. */
  batchSize?: number;
}

export type StartPosition =
  | { at: 'head' }
  | { at: 'tail' }
  | { at: 'cursor'; cursor: string }
  | { at: 'realtime'; usec: number };

export class JournalError extends Error {}

export declare class Journal {
  static open(options: JournalOptions): Journal;
  seek(position: StartPosition): void;
  /** Up to `max` entries available now (may be empty). */
  readBatch(max?: number): JournalEntry[];
  /** Batches as they become available: drains, yields to the event loop between batches,
   *  then waits (never blocking the loop) for new entries. Ends when close() is called. */
  batches(): AsyncIterableIterator<JournalEntry[]>;
  /** Cursor of the last entry returned, if any. */
  readonly cursor: string | null;
  close(): void;
}
