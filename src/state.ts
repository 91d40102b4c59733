// What survives a restart: records, active bans and the journal cursor, under state_dir, in two
// files: state.json, a snapshot of everything, and state.log beside it, what changed since that
// snapshot, one line per save (state-log.ts). A save appends only what changed (one write, one
// fdatasync); once the log outgrows its snapshot (or LOG_FLOOR), the next save writes a new
// snapshot and an empty log instead: the work stays linear in the changes, where rewriting
// everything every save was quadratic over a long flood.
// The snapshot and a new log are written atomically (temp file in the same directory, fsync,
// rename, fsync directory): the snapshot first, then the log that names it, so a crash leaves the
// previous pair, or the new snapshot with a log that names another (ignored: the snapshot holds
// it all). A crash mid-append leaves a torn last line: dropped with one log line. A file that
// cannot be read back (garbage, another version) is moved aside and reported, never silently
// dropped. Files are read without following a symlink, temp files are created exclusively (no
// symlink or file planted under its name is ever opened), the log is opened for appending with
// O_NOFOLLOW and never created by an append, and checkStateDir refuses a directory that anyone
// but root can write.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseJson } from './json';
import { checkPrivateDir } from './private-dir';
import { decode, encodePieces, STATE_FILE, type SavedRecord, type State, type StateLoad } from './state-format';
import { applyDeltas, encodeDelta, isGen, LOG_FILE, logHeader, parseLog, type StateDelta } from './state-log';

export { STATE_FILE, STATE_VERSION, type SavedBan, type SavedRecord, type State, type StateLoad } from './state-format';
export { LOG_FILE, type StateDelta } from './state-log';

/** A log smaller than this is never compacted (a snapshot of a few records would be rewritten every few saves). */
export const LOG_FLOOR = 1 << 20;

function stamp(now: Date): string {
  // 20250131T235959.123Z: sortable, no colons (friendly to every tool that parses file names)
  return now.toISOString().replace(/[-:]/g, '');
}

function errText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return err && err.code ? `${err.code} (${err.message})` : String(e);
}

type Read = { text: string; bytes: number } | { missing: true } | { failed: string };

export class StateStore {
  readonly file: string;
  readonly logFile: string;
  private seq = 0;
  private writing: Promise<void> = Promise.resolve();
  /** The log follows the snapshot and ends with a whole line: a save may append to it. */
  private appendable = false;
  snapshotBytes = 0;
  logBytes = 0;
  /** Bytes on disk after the last save: snapshot + log (status, metrics). */
  lastBytes = 0;
  /** Every byte this store wrote to either file (bench). */
  bytesWritten = 0;

  constructor(readonly dir: string) {
    this.file = path.join(dir, STATE_FILE);
    this.logFile = path.join(dir, LOG_FILE);
  }

  /** A save may append only what changed (else it must write a whole snapshot). */
  get canAppend(): boolean {
    return this.appendable;
  }

  /** The log has outgrown its snapshot (and LOG_FLOOR): time for a whole snapshot. */
  get wantsCompaction(): boolean {
    return this.logBytes > Math.max(this.snapshotBytes, LOG_FLOOR);
  }

  /**
   * Missing file: {state:null}. Corrupt: renamed aside, {state:null, problem}. Never throws for
   * content. `problem` says what is wrong and where the file went, never what it contains; the
   * caller adds what it does about it. The log's saves are applied on top; what was wrong with
   * the log (and done about it) is in `note`.
   */
  load(): StateLoad {
    this.appendable = false;
    const snap = this.read(this.file, 'state file');
    if ('missing' in snap) return { state: null };
    if ('failed' in snap) return { state: null, problem: snap.failed };
    const { text } = snap;
    if (text.length === 0) return this.setAside(this.file, 'state file', 'is empty');
    let value: unknown;
    try {
      value = parseJson(text);
    } catch (e) {
      // JsonError's message names the place, never the bytes (V8's own quotes the text).
      return this.setAside(this.file, 'state file', `is damaged: ${(e as Error).message}`);
    }
    const decoded = decode(value);
    if (typeof decoded === 'string') return this.setAside(this.file, 'state file', decoded);
    this.snapshotBytes = snap.bytes;
    const gen = (value as { gen?: unknown }).gen;
    return this.loadLog(decoded, isGen(gen) ? gen : null);
  }

  /** The snapshot's log applied, when it follows this snapshot; never throws. */
  private loadLog(state: State, gen: string | null): StateLoad {
    const log = this.read(this.logFile, 'state log');
    if ('missing' in log) return { state };
    if ('failed' in log) return { state, note: `${log.failed}; state.json alone used` };
    const parsed = gen ? parseLog(log.text, gen) : null;
    if (parsed?.badLine !== undefined) {
      const aside = this.setAside(this.logFile, 'state log', `line ${parsed.badLine} is damaged`);
      return { state: applyDeltas(state, parsed.deltas), note: `${aside.problem}; the ${parsed.deltas.length} saves before it were applied` };
    }
    if (!parsed?.follows) {
      // A crash between a compaction's two renames, or a snapshot of an older version: the
      // snapshot is newer than anything this log holds.
      const why = parsed?.torn ? 'has no complete first line' : log.text.length === 0 ? 'is empty' : 'does not follow state.json (another snapshot)';
      return { state, note: `state log ${this.logFile} ${why}; ignored, state.json alone used` };
    }
    const merged = applyDeltas(state, parsed.deltas);
    if (parsed.torn) {
      return { state: merged, note: `state log ${this.logFile}: its last save was cut short (a crash while it was written), dropped; ${parsed.deltas.length} saves applied` };
    }
    this.appendable = true;
    this.logBytes = log.bytes;
    this.lastBytes = this.snapshotBytes + this.logBytes;
    return { state: merged };
  }

  /** Read a file of ours without following a symlink or waiting on a FIFO; set aside what is not a regular file. */
  private read(file: string, what: string): Read {
    let fd: number;
    try {
      // O_NOFOLLOW: a symlink here is never followed (ELOOP); O_NONBLOCK: a FIFO cannot hang us.
      const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK } = fs.constants;
      fd = fs.openSync(file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return { missing: true };
      if (code === 'ELOOP') return { failed: this.setAside(file, what, 'is a symbolic link (not followed)').problem! };
      // Unreadable (EACCES, EIO): not a content problem and not ours to move.
      return { failed: `${what} ${file} cannot be read: ${errText(e)}` };
    }
    try {
      const st = fs.fstatSync(fd);
      if (st.isDirectory()) return { failed: this.setAside(file, what, 'is a directory, not a file').problem! };
      if (!st.isFile()) return { failed: this.setAside(file, what, 'is not a regular file').problem! };
      const buf = fs.readFileSync(fd);
      return { text: buf.toString('utf8'), bytes: buf.length };
    } catch (e) {
      return { failed: `${what} ${file} cannot be read: ${errText(e)}` };
    } finally {
      fs.closeSync(fd);
    }
  }

  private setAside(file: string, what: string, why: string): StateLoad {
    const aside = `${file}.corrupt-${stamp(new Date())}`;
    try {
      fs.renameSync(file, aside);
    } catch (e) {
      return { state: null, problem: `${what} ${file} ${why}; could not move it aside (${errText(e)})` };
    }
    return { state: null, problem: `${what} ${file} ${why}; moved aside to ${aside}` };
  }

  /**
   * Everything: a new snapshot, then an empty log that names it (each atomic: temp file, fsync,
   * rename, fsync dir); the snapshot is encoded and written in pieces (state-format.ts), so
   * the event loop turns in between. Saves and appends are serialised: a second call waits for the first.
   * Throws (a clear message) when the directory is missing or not writable.
   */
  save(state: State): Promise<void> {
    const gen = randomBytes(8).toString('hex');
    // The lists are the caller's to hand over (not changed after this call); their entries are
    // encoded piece by piece while the event loop turns: one changed meanwhile is written as it
    // is then, and again in the next save's line.
    return this.queue(() => this.writeAll(state, gen));
  }

  /** Only what changed, as one line at the end of the log. Rejects unless canAppend. */
  append(delta: StateDelta): Promise<void> {
    return this.queue(async () => {
      let text: string;
      try {
        text = await encodeDelta(delta);
      } catch (e) {
        this.appendable = false; // what it held is lost to the log: the next save writes everything
        throw new Error(`cannot save state to ${this.logFile}: ${(e as Error).message}`);
      }
      await this.writeLine(text);
    });
  }

  private queue(write: () => Promise<void>): Promise<void> {
    const run = this.writing.then(write);
    this.writing = run.then(() => undefined, () => undefined);
    return run;
  }

  private async writeAll(state: State, gen: string): Promise<void> {
    this.appendable = false; // until the new log is in place
    const head = Buffer.from(logHeader(gen), 'utf8');
    let tmpSnap: string | null = null;
    let tmpLog: string | null = null;
    let snapBytes = 0;
    try {
      [tmpSnap, snapBytes] = await this.temp(this.file, STATE_FILE, encodePieces(state, gen));
      [tmpLog] = await this.temp(this.file, LOG_FILE, [head]);
      await fs.promises.rename(tmpSnap, this.file);
    } catch (e) {
      if (tmpSnap) await fs.promises.unlink(tmpSnap).catch(() => {});
      if (tmpLog) await fs.promises.unlink(tmpLog).catch(() => {});
      const why = e instanceof Error && !(e as NodeJS.ErrnoException).code ? e.message : errText(e);
      throw new Error(`cannot save state to ${this.file}: ${why}`);
    }
    // The snapshot's rename is durable before the old log is replaced: a crash leaves the old
    // log beside the new snapshot (ignored), never the new log beside the old snapshot.
    await this.syncDir();
    this.bytesWritten += snapBytes;
    this.snapshotBytes = snapBytes;
    try {
      await fs.promises.rename(tmpLog!, this.logFile);
    } catch (e) {
      await fs.promises.unlink(tmpLog!).catch(() => {});
      throw new Error(`cannot save state to ${this.logFile}: ${errText(e)}`);
    }
    await this.syncDir();
    this.bytesWritten += head.length;
    this.logBytes = head.length;
    this.lastBytes = this.snapshotBytes + this.logBytes;
    this.appendable = true;
  }

  private async writeLine(text: string): Promise<void> {
    if (!this.appendable) throw new Error(`cannot save state to ${this.logFile}: it does not follow state.json (a whole save is due)`);
    const buf = Buffer.from(text, 'utf8');
    let fh: fs.promises.FileHandle | undefined;
    try {
      // Never created here (O_CREAT absent): only a whole save makes a log, exclusively.
      const { O_WRONLY, O_APPEND, O_NOFOLLOW, O_NONBLOCK } = fs.constants;
      fh = await fs.promises.open(this.logFile, O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK);
      if (!(await fh.stat()).isFile()) throw new Error('not a regular file');
      await fh.writeFile(buf);
      await fh.datasync();
      await fh.close();
      fh = undefined;
    } catch (e) {
      // Part of the line may be on disk (a torn tail): nothing more is appended after it; the
      // next save writes everything anew.
      this.appendable = false;
      if (fh) await fh.close().catch(() => {});
      throw new Error(`cannot save state to ${this.logFile}: ${errText(e)}`);
    }
    this.bytesWritten += buf.length;
    this.logBytes += buf.length;
    this.lastBytes = this.snapshotBytes + this.logBytes;
  }

  /** A temp file beside `file`, created exclusively, written piece by piece and fsynced; its name and size. */
  private async temp(file: string, name: string, pieces: Iterable<string | Buffer>): Promise<[string, number]> {
    // An unguessable name, created exclusively: nothing planted under it is ever opened.
    const tmp = path.join(path.dirname(file), `.${name}.${process.pid}.${++this.seq}.${randomBytes(6).toString('hex')}.tmp`);
    let fh: fs.promises.FileHandle | undefined;
    let created = false;
    try {
      const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
      fh = await fs.promises.open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
      created = true;
      let bytes = 0;
      for (const piece of pieces) {
        const buf = typeof piece === 'string' ? Buffer.from(piece, 'utf8') : piece;
        await fh.writeFile(buf); // from the current position: the pieces follow each other
        bytes += buf.length;
      }
      await fh.sync();
      await fh.close();
      fh = undefined;
      return [tmp, bytes];
    } catch (e) {
      if (fh) await fh.close().catch(() => {});
      if (created) await fs.promises.unlink(tmp).catch(() => {});
      throw e;
    }
  }

  /** A rename is durable only once the directory itself is on disk. */
  private async syncDir(): Promise<void> {
    try {
      const dh = await fs.promises.open(this.dir, 'r');
      try {
        await dh.sync();
      } finally {
        await dh.close();
      }
    } catch {
      /* some filesystems refuse fsync on a directory; the rename is done regardless */
    }
  }
}

/**
 * Create state_dir if missing (0700) and refuse it unless only the daemon's user can write it
 * and the directories above it. Throws UnsafeDirError (exitCode 78), one line naming the
 * directory: `state_dir /var/lib/tallow: writable by others (mode 0777) (chmod go-w ...); refusing to use it`.
 * Call at start-up, before StateStore.load, outside any catch that would only warn.
 */
export function checkStateDir(dir: string): void {
  checkPrivateDir(dir, 'state_dir');
}

/**
 * Records worth restoring at `now`: the tracker's pruning rule applied to the time the daemon was
 * down (unseen for `expires` seconds: gone; banned, but the ban has ended: gone).
 */
export function liveRecords(state: State, now: number, expiresSeconds: number): SavedRecord[] {
  const horizon = now - expiresSeconds * 1000;
  const running = new Set(state.bans.filter((b) => b.expiry > now).map((b) => b.address));
  return state.records.filter((r) => r.last > horizon && !(r.banned && !running.has(r.address)));
}

/**
 * Saves at most every `intervalMs` (a flood must not turn into a write per batch), at once when
 * idle long enough, and on flush() at shutdown. `snapshot` builds what to write when a write starts.
 */
export class StateSaver {
  private dirty = false;
  private timer: NodeJS.Timeout | null = null;
  private lastStart = 0;
  private inFlight: Promise<void> | null = null;
  saves = 0;
  failures = 0;

  constructor(
    private readonly store: StateStore,
    /** What to write when a save starts: everything (a State), or what changed (a StateDelta, appended). */
    private readonly snapshot: () => State | StateDelta,
    private readonly intervalMs = 2000,
    private readonly onError: (message: string) => void = () => {},
    /** After each successful save: how long it took (s), from the snapshot to the directory sync. */
    private readonly onSaved: (seconds: number) => void = () => {},
  ) {}

  /** Something changed: a save will follow within intervalMs. */
  markDirty(): void {
    this.dirty = true;
    if (this.timer || this.inFlight) return;
    const wait = Math.max(0, this.lastStart + this.intervalMs - Date.now());
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.run();
    }, wait);
    this.timer.unref?.();
  }

  private async run(): Promise<void> {
    if (!this.dirty) return;
    this.dirty = false;
    this.lastStart = Date.now();
    const t0 = process.hrtime.bigint();
    const s = this.snapshot();
    this.inFlight = ('version' in s ? this.store.save(s) : this.store.append(s)).then(
      () => { this.saves++; this.onSaved(Number(process.hrtime.bigint() - t0) / 1e9); },
      (e: Error) => { this.failures++; this.dirty = true; this.onError(e.message); },
    );
    await this.inFlight;
    this.inFlight = null;
    if (this.dirty) this.markDirty();
  }

  /** Write now if anything changed (shutdown); waits for a save already running. */
  async flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.inFlight) await this.inFlight;
    if (this.dirty) await this.run();
  }
}
