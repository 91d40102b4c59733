// What survives a restart: records, active bans and the journal cursor, in one JSON file under
// state_dir. Written atomically (temp file in the same directory, fsync, rename, fsync directory),
// so a crash leaves either the previous file or the new one, never a mix. A file that cannot be
// read back (torn, garbage, another version) is moved aside and reported, never silently dropped.
// The file is read without following a symlink, the temp file is created exclusively (no symlink
// or file planted under its name is ever opened), and checkStateDir refuses a directory that
// anyone but root can write.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import { parseJson } from './json';
import { checkPrivateDir } from './private-dir';
import type { Family } from './address';
import type { BanReason } from './ledger';
import { canonicalTarget, familyOf } from './target';

/** A tracker record as saved (the tracker's own shape; kept here so the file format is one place). */
export interface SavedRecord {
  /** an address, or a network for a rule with a ban prefix */
  address: string;
  family: Family;
  /** score pool ('' tallow.conf's shared one) */
  pool: string;
  score: number;
  count: number;
  /** ms since epoch */
  first: number;
  last: number;
  banned: boolean;
  pattern: string | null;
}

/** A ban of the ledger as saved. */
export interface SavedBan {
  /** an address, or a network */
  address: string;
  family: Family;
  /** Scope id ('' every port) */
  scope: string;
  /** the rule that decided it, null when none (manual, adopted, files before version 3) */
  rule: string | null;
  /** ms since epoch */
  expiry: number;
  since: number;
  origin: 'rule' | 'manual' | 'adopted' | `remote:${string}`;
  reason: BanReason;
  pattern: string | null;
  score: number;
  count: number;
}

export interface State {
  version: 3;
  /** ms since epoch when written */
  saved: number;
  cursor: string | null;
  records: SavedRecord[];
  bans: SavedBan[];
}

export interface StateLoad {
  state: State | null;
  /** Set when the file was unreadable/corrupt: what was wrong, and where it was moved aside. */
  problem?: string;
}

export const STATE_VERSION = 3;
export const STATE_FILE = 'state.json';

// On disk, records and bans are arrays (tuples): half the bytes of objects and about twice as
// fast to write and read at 100,000 records.
//   version 3 (rules per service): the address may be a network (`2001:db8::/64`);
//   record: [address, score, count, first, last, banned(0|1), pattern|null, pool]
//   ban:    [address, expiry, pattern|null, origin, reason, score, count, since, scope, rule|null]
//   version 2 (read, never written): the same without pool, scope and rule ('', '', null).
//   version 1 (read, never written): a record had banExpiry before pattern (the ledger holds
//   that now); a ban was [address, expiry, pattern|null].
// The family is not stored: it follows from the address (a colon means IPv6).

type RecordTuple = [string, number, number, number, number, 0 | 1, string | null, string];
type BanTuple = [string, number, string | null, string, string, number, number, number, string, string | null];

// One JSON.stringify over the whole tuple arrays: measured fastest (about 2x a stringify per
// record, 3x hand-built strings), which matters because encoding is the part of a save that holds
// the event loop (bench/state).
function encode(state: State): string {
  const records: RecordTuple[] = state.records.map((r) => [r.address, r.score, r.count, r.first, r.last, r.banned ? 1 : 0, r.pattern, r.pool ?? '']);
  const bans: BanTuple[] = state.bans.map((b) => [b.address, b.expiry, b.pattern, b.origin, b.reason, b.score, b.count, b.since, b.scope ?? '', b.rule ?? null]);
  return JSON.stringify({ version: STATE_VERSION, saved: state.saved, cursor: state.cursor, records, bans }) + '\n';
}

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const isStrOrNull = (v: unknown): v is string | null => v === null || typeof v === 'string';
const isAddress = (v: unknown): v is string => typeof v === 'string' && net.isIP(v) !== 0;
/** Version 3: an address or a network, in the canonical form the daemon writes. */
const isTarget = (v: unknown): v is string => typeof v === 'string' && (net.isIP(v) !== 0 || canonicalTarget(v)?.target === v);
const ORIGIN = /^(?:rule|manual|adopted|remote:[!-~]{1,64})$/;
const REASONS: ReadonlySet<string> = new Set<BanReason>(['threshold', 'instant', 'manual', 'adopted', 'recidive']);
/** Scope ids (scope.ts) and rule/pool names: short printable words. */
const SCOPE_ID = /^[a-z0-9_]{0,31}$/;
const isName = (v: unknown): v is string => typeof v === 'string' && v.length <= 200 && /^[!-~]*$/.test(v);

function decodeRecord(t: unknown, version: number): SavedRecord | null {
  if (!Array.isArray(t) || t.length !== (version === 1 ? 8 : version === 2 ? 7 : 8)) return null;
  const [address, score, count, first, last, banned] = t;
  const pattern = t[version === 1 ? 7 : 6];
  const pool = version === 3 ? t[7] : '';
  if (!(version === 3 ? isTarget(address) : isAddress(address)) || !isNum(score) || !isNum(count) || !isNum(first) || !isNum(last) || (banned !== 0 && banned !== 1) || !isStrOrNull(pattern) || !isName(pool)) return null;
  if (version === 1 && !isNum(t[6])) return null;
  return { address, family: familyOf(address), pool, score, count, first, last, banned: banned === 1, pattern };
}

function decodeBan(t: unknown, version: number, saved: number): SavedBan | null {
  if (!Array.isArray(t) || t.length !== (version === 1 ? 3 : version === 2 ? 8 : 10)) return null;
  const [address, expiry, pattern] = t;
  if (!(version === 3 ? isTarget(address) : isAddress(address)) || !isNum(expiry) || !isStrOrNull(pattern)) return null;
  const family = familyOf(address);
  if (version === 1) {
    const manual = pattern === 'manual';
    return { address, family, scope: '', rule: null, expiry, since: saved, origin: manual ? 'manual' : 'rule', reason: manual ? 'manual' : 'threshold', pattern, score: 0, count: 0 };
  }
  const [, , , origin, reason, score, count, since] = t;
  if (typeof origin !== 'string' || !ORIGIN.test(origin) || typeof reason !== 'string' || !REASONS.has(reason) || !isNum(score) || !isNum(count) || !isNum(since)) return null;
  const scope = version === 3 ? t[8] : '';
  const rule = version === 3 ? t[9] : null;
  if (typeof scope !== 'string' || !SCOPE_ID.test(scope) || !(rule === null || (isName(rule) && rule !== ''))) return null;
  return { address, family, scope, rule, expiry, since, origin: origin as SavedBan['origin'], reason: reason as SavedBan['reason'], pattern, score, count };
}

/** Decode and check a parsed file; returns the state or what is wrong with it. */
function decode(value: unknown): State | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not a JSON object';
  const v = value as Record<string, unknown>;
  // The found value is named only when it is a small number: the file's bytes stay out of logs.
  if (v.version !== 1 && v.version !== 2 && v.version !== STATE_VERSION) {
    return Number.isSafeInteger(v.version) ? `version ${String(v.version)} is not 1 to ${STATE_VERSION}` : `"version" is missing or not 1 to ${STATE_VERSION}`;
  }
  const version = v.version;
  if (!isNum(v.saved)) return '"saved" is not a number';
  if (!isStrOrNull(v.cursor)) return '"cursor" is not a string';
  if (!Array.isArray(v.records)) return '"records" is not an array';
  if (!Array.isArray(v.bans)) return '"bans" is not an array';
  const records: SavedRecord[] = new Array(v.records.length);
  for (let i = 0; i < v.records.length; i++) {
    const r = decodeRecord(v.records[i], version);
    if (!r) return `record ${i + 1} is malformed`;
    records[i] = r;
  }
  const bans: SavedBan[] = new Array(v.bans.length);
  for (let i = 0; i < v.bans.length; i++) {
    const b = decodeBan(v.bans[i], version, v.saved);
    if (!b) return `ban ${i + 1} is malformed`;
    bans[i] = b;
  }
  return { version: STATE_VERSION, saved: v.saved, cursor: v.cursor, records, bans };
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

  /**
   * Missing file: {state:null}. Corrupt: renamed aside, {state:null, problem}. Never throws for
   * content. `problem` says what is wrong and where the file went, never what it contains; the
   * caller adds what it does about it.
   */
  load(): StateLoad {
    let text: string;
    let fd: number;
    try {
      // O_NOFOLLOW: a symlink here is never followed (ELOOP); O_NONBLOCK: a FIFO cannot hang us.
      const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK } = fs.constants;
      fd = fs.openSync(this.file, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return { state: null };
      if (code === 'ELOOP') return this.setAside('is a symbolic link (not followed)');
      // Unreadable (EACCES, EIO): not a content problem and not ours to move.
      return { state: null, problem: `state file ${this.file} cannot be read: ${errText(e)}` };
    }
    try {
      const st = fs.fstatSync(fd);
      if (st.isDirectory()) return this.setAside('is a directory, not a file');
      if (!st.isFile()) return this.setAside('is not a regular file');
      text = fs.readFileSync(fd, 'utf8');
    } catch (e) {
      return { state: null, problem: `state file ${this.file} cannot be read: ${errText(e)}` };
    } finally {
      fs.closeSync(fd);
    }
    if (text.length === 0) return this.setAside('is empty');
    let value: unknown;
    try {
      value = parseJson(text);
    } catch (e) {
      // JsonError's message names the place, never the bytes (V8's own quotes the text).
      return this.setAside(`is damaged: ${(e as Error).message}`);
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
      return { state: null, problem: `state file ${this.file} ${what}; could not move it aside (${errText(e)})` };
    }
    return { state: null, problem: `state file ${this.file} ${what}; moved aside to ${aside}` };
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
    // An unguessable name, created exclusively: nothing planted under it is ever opened.
    const tmp = path.join(this.dir, `.${STATE_FILE}.${process.pid}.${++this.seq}.${randomBytes(6).toString('hex')}.tmp`);
    let fh: fs.promises.FileHandle | undefined;
    let created = false;
    try {
      const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants;
      fh = await fs.promises.open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
      created = true;
      const buf = Buffer.from(text, 'utf8');
      await fh.writeFile(buf);
      await fh.sync();
      await fh.close();
      fh = undefined;
      await fs.promises.rename(tmp, this.file);
      this.lastBytes = buf.length;
    } catch (e) {
      if (fh) await fh.close().catch(() => {});
      if (created) await fs.promises.unlink(tmp).catch(() => {});
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
    this.inFlight = this.store.save(this.snapshot()).then(
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
