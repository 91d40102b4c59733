// Typed face of the sd-journal addon (native/journal.cc).
// Entries flow one way: Journal -> batches of JournalEntry -> matcher.
// The addon gives mechanisms; where to start, how to drain and when to wait is decided here.
import { addon, NativeJournal } from './addon';

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
  /** Cap on each returned field value, in bytes (default 65536). A cut never splits a UTF-8 character. */
  maxFieldSize?: number;
  /** Entries per batch while catching up (default 2000). */
  batchSize?: number;
}

export type StartPosition =
  | { at: 'head' }
  | { at: 'tail' }
  | { at: 'cursor'; cursor: string }
  | { at: 'realtime'; usec: number };

export class JournalError extends Error {
  override name = 'JournalError';
}

export const DEFAULT_MAX_FIELD_SIZE = 65536;
export const DEFAULT_BATCH_SIZE = 2000;
/** After entries arrived, batches() looks for more every FOLLOW_POLL_MS for FOLLOW_WINDOW_MS. */
export const FOLLOW_POLL_MS = 5;
export const FOLLOW_WINDOW_MS = 2000;

/** Journal field names: upper-case letters, digits and underscores, not starting with a digit. */
const FIELD_NAME = /^[A-Z_][A-Z0-9_]*$/;

export function isFieldName(name: string): boolean {
  return FIELD_NAME.test(name) && name.length <= 64;
}

/** Checks one `FIELD=value` term; throws a JournalError naming it when it is not one. */
export function checkMatchTerm(term: unknown): string {
  if (typeof term !== 'string') throw new JournalError(`journal match ${String(term)}: expected a "FIELD=value" string`);
  const eq = term.indexOf('=');
  if (eq < 0) throw new JournalError(`journal match "${term}": expected FIELD=value`);
  const field = term.slice(0, eq);
  if (!isFieldName(field)) {
    throw new JournalError(
      `journal match "${term}": field "${field}" must be upper-case letters, digits and underscores, not starting with a digit`,
    );
  }
  return term;
}

// Native errors already name the call and errno ("sd_journal_seek_cursor: EINVAL ..."):
// keep the message, make it a JournalError.
function native<T>(what: () => T): T {
  try {
    return what();
  } catch (err) {
    if (err instanceof JournalError) throw err;
    throw new JournalError((err as Error).message, { cause: err });
  }
}

function positiveInteger(value: number | undefined, fallback: number, what: string, max: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 1 || value > max) {
    throw new JournalError(`${what} must be an integer from 1 to ${max}, got ${value}`);
  }
  return value;
}

export class Journal {
  private readonly fieldNames: string[];
  private readonly batchSize: number;
  /** The journal stands on an unread entry (seek to a cursor whose entry is gone). */
  private includeCurrent = false;
  private lastCursor: string | null = null;
  private closed = false;
  private iterating = false;
  private wake: (() => void) | null = null;
  /** Date.now() of the last batch that had entries (the follow window, below). */
  private lastData = 0;
  /** How often batches() looked again on its own in a follow window, and was woken by the journal. */
  readonly stats = { polls: 0, wakeups: 0 };

  private constructor(private readonly handle: NativeJournal, fields: string[], batchSize: number) {
    this.fieldNames = fields;
    this.batchSize = batchSize;
  }

  static open(options: JournalOptions): Journal {
    if (options.directory !== undefined && options.files !== undefined) {
      throw new JournalError('journal: give either a directory or files, not both');
    }
    if (options.directory !== undefined && (typeof options.directory !== 'string' || options.directory === '')) {
      throw new JournalError('journal directory must be a non-empty path');
    }
    if (options.files !== undefined) {
      if (!Array.isArray(options.files) || options.files.length === 0) throw new JournalError('journal files: give at least one file');
      for (const f of options.files) if (typeof f !== 'string' || f === '') throw new JournalError(`journal files: bad path ${JSON.stringify(f)}`);
    }
    if (!Array.isArray(options.fields) || options.fields.length === 0) throw new JournalError('journal fields: give at least one field name');
    for (const f of options.fields) {
      if (typeof f !== 'string' || !isFieldName(f)) {
        throw new JournalError(`journal field "${String(f)}": must be upper-case letters, digits and underscores, not starting with a digit`);
      }
    }
    const groups = options.matches ?? [];
    if (!Array.isArray(groups)) throw new JournalError('journal matches must be an array of match groups');
    for (const g of groups) {
      if (!Array.isArray(g) || g.length === 0) throw new JournalError(`journal match group ${JSON.stringify(g)}: expected a non-empty array of "FIELD=value"`);
      for (const t of g) checkMatchTerm(t);
    }
    const maxFieldSize = positiveInteger(options.maxFieldSize, DEFAULT_MAX_FIELD_SIZE, 'maxFieldSize', 2 ** 30);
    const batchSize = positiveInteger(options.batchSize, DEFAULT_BATCH_SIZE, 'batchSize', 1_000_000);

    const Native = native(() => addon().Journal);
    const handle = native(() =>
      new Native(options.directory !== undefined ? { directory: options.directory } : options.files !== undefined ? { files: options.files } : {}),
    );
    try {
      native(() => {
        handle.setFields([...options.fields]);
        handle.setMaxFieldSize(maxFieldSize);
        groups.forEach((group, i) => {
          if (i > 0) handle.addDisjunction();
          for (const term of group) handle.addMatch(term);
        });
      });
    } catch (err) {
      handle.close();
      throw err;
    }
    return new Journal(handle, [...options.fields], batchSize);
  }

  /** Where the next readBatch() starts. Without a seek: the head. */
  seek(position: StartPosition): void {
    this.requireOpen();
    const h = this.handle;
    native(() => {
      switch (position.at) {
        case 'head':
          h.seekHead();
          this.includeCurrent = false;
          break;
        case 'tail':
          // Stand on the last entry so next() gives only new ones; with no (matching)
          // entry at all, start from the head so the first new entries are not lost.
          h.seekTail();
          if (h.previous() === 0) h.seekHead();
          this.includeCurrent = false;
          break;
        case 'cursor': {
          const c = position.cursor;
          if (typeof c !== 'string' || c === '') throw new JournalError('journal cursor must be a non-empty string');
          h.seekCursor(c);
          // Land on the cursor's entry and skip it; if it was vacuumed (or no longer
          // matches), next() stands on a later, unread entry, which must not be skipped.
          const landed = h.next() > 0;
          this.includeCurrent = landed && !h.testCursor(c);
          break;
        }
        case 'realtime':
          if (typeof position.usec !== 'number' || !(position.usec >= 0)) {
            throw new JournalError(`journal realtime position must be microseconds >= 0, got ${String(position.usec)}`);
          }
          h.seekRealtime(position.usec);
          this.includeCurrent = false;
          break;
        default:
          throw new JournalError(`journal seek: unknown position ${JSON.stringify(position)}`);
      }
    });
  }

  /** Up to `max` entries available now (may be empty). */
  readBatch(max: number = this.batchSize): JournalEntry[] {
    this.requireOpen();
    const names = this.fieldNames;
    const stride = 2 + names.length;
    const out: JournalEntry[] = [];
    const sink = (...values: Array<string | number | undefined>): void => {
      for (let i = 0; i < values.length; i += stride) {
        const fields: Record<string, string> = {};
        for (let k = 0; k < names.length; k++) {
          const v = values[i + 2 + k];
          if (v !== undefined) fields[names[k]] = v as string;
        }
        out.push({ cursor: values[i] as string, realtime: values[i + 1] as number, fields });
      }
    };
    native(() => this.handle.readBatch(max, this.includeCurrent, sink));
    this.includeCurrent = false;
    if (out.length > 0) this.lastCursor = out[out.length - 1].cursor;
    return out;
  }

  /** Batches as they become available: drains, yields to the event loop between batches,
   *  then waits (never blocking the loop) for new entries. Ends when close() is called. */
  async *batches(): AsyncIterableIterator<JournalEntry[]> {
    this.requireOpen();
    if (this.iterating) throw new JournalError('journal: batches() is already running on this journal');
    this.iterating = true;
    // sd_journal_process() runs in the addon before this callback; any wake-up just
    // means "read again", so a wake-up while the consumer is busy needs no record.
    native(() =>
      this.handle.watch(() => {
        this.stats.wakeups++;
        const wake = this.wake;
        this.wake = null;
        wake?.();
      }),
    );
    try {
      while (!this.closed) {
        const batch = this.readBatch();
        if (batch.length > 0) {
          this.lastData = Date.now();
          yield batch;
          // Catching up: let timers and I/O run between full batches.
          if (batch.length >= this.batchSize) await new Promise<void>((resolve) => setImmediate(resolve));
          continue;
        }
        // journald tells readers about new entries 250-500 ms after writing them (a timer of
        // its own), but the entries are in the file at once. While entries keep coming (an
        // attack), look again every few ms for a short while instead of waiting for that
        // notification; a quiet journal costs nothing, as the window closes by itself.
        const follow = Date.now() - this.lastData < FOLLOW_WINDOW_MS;
        await new Promise<void>((resolve) => {
          let timer: NodeJS.Timeout | undefined;
          const done = (): void => {
            if (timer) clearTimeout(timer);
            this.wake = null;
            resolve();
          };
          this.wake = done;
          if (follow) {
            timer = setTimeout(() => {
              this.stats.polls++;
              done();
            }, FOLLOW_POLL_MS);
          }
        });
      }
    } finally {
      this.iterating = false;
      this.wake = null;
      if (!this.closed) this.handle.unwatch();
    }
  }

  /** sd_journal_process(): take in files that appeared, rotated or were removed since the
   *  last call. batches() does this by itself; for callers polling with readBatch(). */
  handleChanges(): 'nop' | 'append' | 'invalidate' {
    this.requireOpen();
    const r = native(() => this.handle.process());
    return r === 1 ? 'append' : r === 2 ? 'invalidate' : 'nop';
  }

  /** Cursor of the last entry returned, if any. */
  get cursor(): string | null {
    return this.lastCursor;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Idempotent. Ends a running batches() iteration. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.handle.close();
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }

  private requireOpen(): void {
    if (this.closed) throw new JournalError('journal is closed');
  }
}
