// What survives a restart: records, active bans and the journal cursor, in one JSON file under
// state_dir. Written atomically (temp file in the same directory, fsync, rename, fsync directory),
// so a crash leaves either the previous file or the new one, never a mix. A file that cannot be
// read back (torn, garbage, another version) is moved aside and reported, never silently dropped.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
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

export const STATE_VERSION = 1;
export const STATE_FILE = 'state.json';

// On disk, records and bans are arrays (tuples): half the bytes of objects and about twice as
// fast to write and read at 100,000 records.
//   record: [address, score, count, first, last, banned(0|1), banExpiry, pattern|null]
//   ban:    [address, expiry, pattern|null]
// The family is not stored: it follows from the address (a colon means IPv6).

function familyOf(address: string): Family {
  return address.includes(':') ? 6 : 4;
}

type RecordTuple = [string, number, number, number, number, 0 | 1, number, string | null];
type BanTuple = [string, number, string | null];

// One JSON.stringify over the whole tuple arrays: measured fastest (about 2x a stringify per
// record, 3x hand-built strings), which matters because encoding is the part of a save that holds
// the event loop (bench/state).
function encode(state: State): string {
  const records: RecordTuple[] = state.records.map((r) => [r.address, r.score, r.count, r.first, r.last, r.banned ? 1 : 0, r.banExpiry, r.pattern]);
  const bans: BanTuple[] = state.bans.map((b) => [b.address, b.expiry, b.pattern]);
  return JSON.stringify({ version: STATE_VERSION, saved: state.saved, cursor: state.cursor, records, bans }) + '\n';
}

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isStrOrNull = (v: unknown): v is string | null => v === null || typeof v === 'string';

/** Decode and check a parsed file; returns the state or what is wrong with it. */
function decode(value: unknown): State | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  const v = value as Record<string, unknown>;
  if (v.version !== STATE_VERSION) return `version ${JSON.stringify(v.version)} is not ${STATE_VERSION}`;
  if (!isNum(v.saved)) return '"saved" is not a number';
  if (!isStrOrNull(v.cursor)) return '"cursor" is not a string';
  if (!Array.isArray(v.records)) return '"records" is not an array';
  if (!Array.isArray(v.bans)) return '"bans" is not an array';
  const records: TrackerRecord[] = new Array(v.records.length);
  for (let i = 0; i < v.records.length; i++) {
    const t = v.records[i] as unknown[];
    if (
      !Array.isArray(t) || t.length !== 8 || typeof t[0] !== 'string' || net.isIP(t[0]) === 0 ||
      !isNum(t[1]) || !isNum(t[2]) || !isNum(t[3]) || !isNum(t[4]) || (t[5] !== 0 && t[5] !== 1) ||
      !isNum(t[6]) || !isStrOrNull(t[7])
    ) {
      return `record ${i + 1} is malformed`;
    }
    const address = t[0];
    records[i] = {
      address, family: familyOf(address), score: t[1], count: t[2], first: t[3], last: t[4],
      banned: t[5] === 1, banExpiry: t[6], pattern: t[7],
    };
  }
  const bans: SavedBan[] = new Array(v.bans.length);
  for (let i = 0; i < v.bans.length; i++) {
    const t = v.bans[i] as unknown[];
    if (!Array.isArray(t) || t.length !== 3 || typeof t[0] !== 'string' || net.isIP(t[0]) === 0 || !isNum(t[1]) || !isStrOrNull(t[2])) {
      return `ban ${i + 1} is malformed`;
    }
    bans[i] = { address: t[0], family: familyOf(t[0]), expiry: t[1], pattern: t[2] };
  }
  return { version: 1, saved: v.saved, cursor: v.cursor, records, bans };
}

function stamp(now: Date): string {
  // 20250131T235959.123Z: sortable, no colons (friendly to every tool that parses file names)
  return now.toISOString().replace(/[-:]/g, '');
}

function errText(e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  return err && err.code ? `${err.code} (${err.message})` : String(e);
}

export class StateStore {
  readonly file: string;
  private seq = 0;
  private writing: Promise<void> = Promise.resolve();

  constructor(readonly dir: string) {
    this.file = path.join(dir, STATE_FILE);
  }

  /** Missing file: {state:null}. Corrupt: renamed aside, {state:null, problem}. Never throws for content. */
  load(): StateLoad {
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return { state: null };
      if (code === 'EISDIR') return this.setAside('is a directory, not a file');
      // Unreadable (EACCES, EIO): not a content problem and not ours to move; say so and start afresh.
      return { state: null, problem: `state file ${this.file} cannot be read: ${errText(e)}; starting without saved state` };
    }
    if (text.length === 0) return this.setAside('is empty');
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (e) {
      return this.setAside(`is not valid JSON (truncated or damaged: ${(e as Error).message})`);
    }
    const decoded = decode(value);
    if (typeof decoded === 'string') return this.setAside(decoded);
    return { state: decoded };
  }

  private setAside(what: string): StateLoad {
    const aside = `${this.file}.corrupt-${stamp(new Date())}`;
    try {
      fs.renameSync(this.file, aside);
    } catch (e) {
      return { state: null, problem: `state file ${this.file} ${what}; could not move it aside (${errText(e)}); starting without saved state` };
    }
    return { state: null, problem: `state file ${this.file} ${what}; moved aside to ${aside}; starting without saved state` };
  }

  /**
   * Atomic (temp file, fsync, rename, fsync dir). Saves are serialised: a second call waits for
   * the first. Throws (a clear message) when the directory is missing or not writable.
   * Returns the bytes written.
   */
  save(state: State): Promise<void> {
    let text: string;
    try {
      text = encode(state); // snapshot now, while the caller's objects are as they are
    } catch (e) {
      return Promise.reject(new Error(`cannot save state to ${this.file}: ${(e as Error).message}`));
    }
    const run = this.writing.then(() => this.write(text));
    this.writing = run.then(() => undefined, () => undefined);
    return run;
  }

  /** Bytes of the last file written (for status/bench). */
  lastBytes = 0;

  private async write(text: string): Promise<void> {
    const tmp = path.join(this.dir, `.${STATE_FILE}.${process.pid}.${++this.seq}.tmp`);
    let fh: fs.promises.FileHandle | undefined;
    try {
      fh = await fs.promises.open(tmp, 'w', 0o600);
      const buf = Buffer.from(text, 'utf8');
      await fh.writeFile(buf);
      await fh.sync();
      await fh.close();
      fh = undefined;
      await fs.promises.rename(tmp, this.file);
      this.lastBytes = buf.length;
    } catch (e) {
      if (fh) await fh.close().catch(() => {});
      await fs.promises.unlink(tmp).catch(() => {});
      throw new Error(`cannot save state to ${this.file}: ${errText(e)}`);
    }
    // The rename is durable only once the directory itself is on disk.
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

/** Bans from a saved state still running at `now`, with whole seconds left (at least 1). */
export function activeBans(state: State, now: number): { address: string; family: Family; seconds: number; pattern: string | null }[] {
  const out = [];
  for (const b of state.bans) {
    if (b.expiry > now) out.push({ address: b.address, family: b.family, seconds: Math.max(1, Math.ceil((b.expiry - now) / 1000)), pattern: b.pattern });
  }
  return out;
}

/**
 * Records worth restoring at `now`: the tracker's pruning rule applied to the time the daemon was
 * down (unseen for `expires` seconds: gone; banned whose ban ended: gone).
 */
export function liveRecords(state: State, now: number, expiresSeconds: number): TrackerRecord[] {
  const horizon = now - expiresSeconds * 1000;
  return state.records.filter((r) => r.last > horizon && !(r.banned && r.banExpiry <= now));
}

/**
 * Saves at most every `intervalMs` (a flood must not turn into a write per batch), at once when
 * idle long enough, and on flush() at shutdown. `snapshot` builds the State when a write starts.
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
    private readonly snapshot: () => State,
    private readonly intervalMs = 2000,
    private readonly onError: (message: string) => void = () => {},
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
    this.inFlight = this.store.save(this.snapshot()).then(
      () => { this.saves++; },
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
