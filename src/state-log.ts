// The state log (issue 12.3): beside state.json, an append-only file of what changed since that
// snapshot, so a save costs what changed, not everything held (a flood toward a million bans
// rewrote 172 MB every 2 s). One line per save, so a crash mid-append loses at most that save:
//
//   <checksum> <json>\n      checksum: the first 16 hex digits of the SHA-1 of <json>'s bytes
//
// Line 1 names the snapshot it follows: {"follows":"<gen>"}, gen being the random id written in
// state.json; a log that names another (a crash between a compaction's two renames) is ignored,
// since the snapshot already holds everything the log did. Then one line per save:
//   {"saved":ms,"cursor":c,"r":[record tuples],"rx":[[address,pool]],"b":[ban tuples],"bx":[[address,scope]]}
// r/b: records and bans as they are now (state.ts's version 3 tuples); rx/bx: gone (unbanned by
// hand, expired). Loading applies the lines in order, removals of a line before its additions.
import { createHash } from 'node:crypto';
import { decodeBan, decodeRecord, encodeBan, encodeRecord, SNAPSHOT_PIECE, type SavedBan, type SavedRecord, type State } from './state-format';

/** What changed since the last save (records and bans as they are now, and the ones gone). */
export interface StateDelta {
  saved: number;
  cursor: string | null;
  records: SavedRecord[];
  recordsGone: { address: string; pool: string }[];
  bans: SavedBan[];
  bansGone: { address: string; scope: string }[];
}

export const LOG_FILE = 'state.log';
const GEN = /^[0-9a-f]{16}$/;

export const isGen = (v: unknown): v is string => typeof v === 'string' && GEN.test(v);

function checksum(json: string): string {
  return createHash('sha1').update(json).digest('hex').slice(0, 16);
}

function frame(value: unknown): string {
  const json = JSON.stringify(value);
  return `${checksum(json)} ${json}\n`;
}

/** The first line of a log that follows the snapshot `gen`. */
export function logHeader(gen: string): string {
  return frame({ follows: gen });
}

const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * One save as one line, encoded in pieces of SNAPSHOT_PIECE entries with the event loop turning
 * in between (a save after a long compaction can hold 100,000 changes). An entry changed while
 * this runs is written as it is then, and again in the next save's line.
 */
export async function encodeDelta(d: StateDelta, piece = SNAPSHOT_PIECE): Promise<string> {
  const parts: string[] = [`{"saved":${JSON.stringify(d.saved)},"cursor":${JSON.stringify(d.cursor)},"r":[`];
  const list = async <T>(xs: T[], encode: (x: T) => unknown) => {
    for (let i = 0; i < xs.length; i += piece) {
      if (i > 0) {
        parts.push(',');
        await turn();
      }
      parts.push(JSON.stringify(xs.slice(i, i + piece).map(encode)).slice(1, -1));
    }
  };
  await list(d.records, encodeRecord);
  parts.push('],"rx":', JSON.stringify(d.recordsGone.map((g) => [g.address, g.pool])), ',"b":[');
  await list(d.bans, encodeBan);
  parts.push('],"bx":', JSON.stringify(d.bansGone.map((g) => [g.address, g.scope])), '}');
  const json = parts.join('');
  return `${checksum(json)} ${json}\n`;
}

/** A line's JSON value when its checksum holds; null otherwise. */
function unframe(line: string): unknown {
  const sp = line.indexOf(' ');
  if (sp !== 16) return null;
  const json = line.slice(17);
  if (checksum(json) !== line.slice(0, 16)) return null;
  try {
    return JSON.parse(json) as unknown;
  } catch {
    return null;
  }
}

const isPair = (v: unknown): v is [string, string] => Array.isArray(v) && v.length === 2 && typeof v[0] === 'string' && typeof v[1] === 'string';

function decodeDelta(value: unknown): StateDelta | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const v = value as Record<string, unknown>;
  if (typeof v.saved !== 'number' || !Number.isFinite(v.saved) || !(v.cursor === null || typeof v.cursor === 'string')) return null;
  if (!Array.isArray(v.r) || !Array.isArray(v.rx) || !Array.isArray(v.b) || !Array.isArray(v.bx)) return null;
  const records: SavedRecord[] = [];
  for (const t of v.r) {
    const r = decodeRecord(t, 3);
    if (!r) return null;
    records.push(r);
  }
  const bans: SavedBan[] = [];
  for (const t of v.b) {
    const b = decodeBan(t, 3, v.saved);
    if (!b) return null;
    bans.push(b);
  }
  if (!v.rx.every(isPair) || !v.bx.every(isPair)) return null;
  return {
    saved: v.saved,
    cursor: v.cursor,
    records,
    recordsGone: v.rx.map(([address, pool]) => ({ address, pool })),
    bans,
    bansGone: v.bx.map(([address, scope]) => ({ address, scope })),
  };
}

export interface ParsedLog {
  /** false: the log follows another snapshot (or none can be told): ignore it whole */
  follows: boolean;
  deltas: StateDelta[];
  /** The last line is incomplete or fails its checksum (a crash mid-append): dropped. */
  torn: boolean;
  /** A bad line with more after it: not a crash's doing. Which line (1-based); deltas hold the lines before it. */
  badLine?: number;
}

/** Split and check a log; never throws. */
export function parseLog(text: string, gen: string): ParsedLog {
  const out: ParsedLog = { follows: false, deltas: [], torn: false };
  let at = 0;
  let n = 0;
  while (at < text.length) {
    const nl = text.indexOf('\n', at);
    const end = nl < 0 ? text.length : nl;
    const line = text.slice(at, end);
    n++;
    const last = nl < 0 || nl === text.length - 1;
    const value = nl < 0 ? null : unframe(line);
    let ok: boolean;
    if (n === 1) {
      const h = value as { follows?: unknown } | null;
      ok = typeof h === 'object' && h !== null && isGen(h.follows);
      if (ok && h!.follows !== gen) return out; // another snapshot's log
      if (ok) out.follows = true;
    } else {
      const d = decodeDelta(value);
      ok = d !== null;
      if (d) out.deltas.push(d);
    }
    if (!ok) {
      if (last) out.torn = true;
      else out.badLine = n;
      return out;
    }
    at = end + 1;
  }
  return out;
}

/** The snapshot with the log's saves applied in order. */
export function applyDeltas(state: State, deltas: StateDelta[]): State {
  if (deltas.length === 0) return state;
  const records = new Map<string, SavedRecord>();
  for (const r of state.records) records.set(`${r.pool}\0${r.address}`, r);
  const bans = new Map<string, SavedBan>();
  for (const b of state.bans) bans.set(`${b.scope}\0${b.address}`, b);
  let { saved, cursor } = state;
  for (const d of deltas) {
    for (const g of d.recordsGone) records.delete(`${g.pool}\0${g.address}`);
    for (const g of d.bansGone) bans.delete(`${g.scope}\0${g.address}`);
    for (const r of d.records) records.set(`${r.pool}\0${r.address}`, r);
    for (const b of d.bans) bans.set(`${b.scope}\0${b.address}`, b);
    saved = d.saved;
    cursor = d.cursor;
  }
  return { version: state.version, saved, cursor, records: [...records.values()], bans: [...bans.values()] };
}
