// The journal as the daemon reads it: opened at the saved cursor (or the tail), read batch after
// batch until closed, and reopened at the same cursor when a reload changes the matches or a read
// fails. The position is taken when it opens, so nothing logged during start-up is missed.
import { Journal, type JournalEntry, type MatchGroup, type StartPosition } from './journal';
import { errText } from './limits';
import type { Logger } from './log';

export interface ReaderOptions {
  /** --journal-dir: files in a directory instead of the system journal */
  directory?: string;
  log: Logger;
  /** The matches and fields of the engine running now (they change on reload). */
  filter(): { matches: MatchGroup[]; fields: string[] };
}

export class Reader {
  journal!: Journal;
  /** Where reading started: `tail` or `saved cursor ...` */
  position = 'tail';
  private reopen = false;
  private stopped = false;

  constructor(private readonly opts: ReaderOptions) {}

  get cursor(): string | null {
    return this.journal.cursor ?? null;
  }

  open(position: StartPosition): void {
    const { matches, fields } = this.opts.filter();
    this.journal = Journal.open({ directory: this.opts.directory, fields, matches });
    if (position.at === 'cursor') {
      try {
        this.journal.seek(position);
        this.position = `saved cursor ${position.cursor}`;
        return;
      } catch (err) {
        this.opts.log.warn(`saved journal cursor not usable (${errText(err)}); starting at the tail`);
      }
    }
    this.journal.seek({ at: 'tail' });
    this.position = 'tail';
  }

  /** Every batch to `onBatch` until close(); a failed read waits 5 s and reopens. */
  async run(onBatch: (batch: JournalEntry[]) => void): Promise<void> {
    for (;;) {
      try {
        for await (const batch of this.journal.batches()) {
          if (this.stopped) break;
          onBatch(batch);
        }
      } catch (e) {
        if (this.stopped) return;
        // Not something a tight loop can fix: log, wait, reopen.
        this.opts.log.error(`journal read failed: ${errText(e)}; reopening in 5 s`);
        await new Promise((r) => setTimeout(r, 5000));
        this.reopen = true;
      }
      if (this.stopped || !this.reopen) return;
      this.reopen = false;
      const cursor = this.journal.cursor;
      this.closeJournal();
      this.open(cursor ? { at: 'cursor', cursor } : { at: 'tail' });
      this.opts.log.info(`journal reopened at ${this.position}`);
    }
  }

  /** The matches changed: the running iterator ends and run() reopens at the same cursor. */
  refilter(): void {
    this.reopen = true;
    this.closeJournal();
  }

  close(): void {
    this.stopped = true;
    this.closeJournal();
  }

  private closeJournal(): void {
    try {
      this.journal.close();
    } catch {
      /* already closed */
    }
  }
}
