// The state file's format (state.ts keeps the files): the saved shapes of a record and a ban,
// their tuples on disk, and the check of a whole parsed file. Shared by the snapshot (state.json)
// and its log (state-log.ts), which writes the same tuples.
import * as net from 'node:net';
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
  /** Something handled on the way, worth one log line (state.log's torn last save dropped, or the log ignored). */
  note?: string;
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
export const encodeRecord = (r: SavedRecord): RecordTuple => [r.address, r.score, r.count, r.first, r.last, r.banned ? 1 : 0, r.pattern, r.pool ?? ''];
export const encodeBan = (b: SavedBan): BanTuple => [b.address, b.expiry, b.pattern, b.origin, b.reason, b.score, b.count, b.since, b.scope ?? '', b.rule ?? null];

/** Entries per piece of a snapshot: ~400 kB of text, ~10 ms of the event loop (bench/state.md). */
export const SNAPSHOT_PIECE = 5_000;

/**
 * The snapshot's text in pieces of at most `piece` records or bans, each one JSON.stringify over
 * tuples (the fastest way measured, bench/state.md): the writer awaits between pieces, so a
 * snapshot of a million bans never holds the event loop for more than one piece. `gen` names it
 * for its log (state-log.ts); older versions ignore the key.
 */
export function* encodePieces(state: State, gen: string, piece = SNAPSHOT_PIECE): Generator<string> {
  yield `{"version":${STATE_VERSION},"saved":${JSON.stringify(state.saved)},"gen":${JSON.stringify(gen)},"cursor":${JSON.stringify(state.cursor)},"records":[`;
  for (let i = 0; i < state.records.length; i += piece) {
    yield (i > 0 ? ',' : '') + JSON.stringify(state.records.slice(i, i + piece).map(encodeRecord)).slice(1, -1);
  }
  yield '],"bans":[';
  for (let i = 0; i < state.bans.length; i += piece) {
    yield (i > 0 ? ',' : '') + JSON.stringify(state.bans.slice(i, i + piece).map(encodeBan)).slice(1, -1);
  }
  yield ']}\n';
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

export function decodeRecord(t: unknown, version: number): SavedRecord | null {
  if (!Array.isArray(t) || t.length !== (version === 1 ? 8 : version === 2 ? 7 : 8)) return null;
  const [address, score, count, first, last, banned] = t;
  const pattern = t[version === 1 ? 7 : 6];
  const pool = version === 3 ? t[7] : '';
  if (!(version === 3 ? isTarget(address) : isAddress(address)) || !isNum(score) || !isNum(count) || !isNum(first) || !isNum(last) || (banned !== 0 && banned !== 1) || !isStrOrNull(pattern) || !isName(pool)) return null;
  if (version === 1 && !isNum(t[6])) return null;
  return { address, family: familyOf(address), pool, score, count, first, last, banned: banned === 1, pattern };
}

export function decodeBan(t: unknown, version: number, saved: number): SavedBan | null {
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
export function decode(value: unknown): State | string {
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

