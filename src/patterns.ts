// Pattern files (tallow's JSON format): loading, validation and compilation. All or nothing: one bad
// item anywhere refuses the whole set, so the daemon never runs with half its patterns.
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setFlagsFromString } from 'node:v8';
import { isFieldName, type MatchGroup } from './journal';
import { parseJson, type JsonError } from './json';
import { MAX_BAN_SECONDS } from './limits';
import { literalHeads, unsupportedSyntax } from './pattern-syntax';
import { BLOCK_KEYS, parseRuleKeys, type RuleKeys } from './rule-keys';

export interface Pattern {
  /** `sshd.json#3`: file name and item index, used in logs as the reason. */
  name: string;
  ban: number;
  score: number;
  /** The pattern as written in the file. */
  source: string;
}

/** One block of a patterns file (the name is historical: tallow's files had one block each). */
export interface PatternFile {
  name: string;          // e.g. 'sshd.json'
  path: string;          // where it was read from
  /** OR'ed groups, each group's terms AND'ed; `unit` is in every group. */
  filter: MatchGroup[];
  patterns: Pattern[];
  /** Its place in the file, from 1, and the file's number of blocks. */
  block: number;
  blocks: number;
  /** The rule keys it gives (rules.ts resolves them into a Rule). */
  keys: RuleKeys;
  /** A `name` with neither `filter` nor `items`: changes the keys it gives of a rule defined elsewhere. */
  override: boolean;
}

/** `file: item N: message`; the CLI exits 78. */
export class PatternError extends Error {
  readonly exitCode = 78;
}

/** A pattern ready to run: see compilePattern. */
export interface CompiledPattern {
  regex: RegExp;
  /** Written tallow's way (`MESSAGE=...`): tested against `MESSAGE=<text>`, else the bare text. */
  prefixed: boolean;
  /** Where the address is: the named group `ip`, else capture group 1. */
  group: 'ip' | 1;
  /** Every match starts with one of these (empty: with anything); checked before the regex runs. */
  heads: string[];
}

const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const IPV4 = `${OCTET}(?:\\.${OCTET}){3}`;
const HEX = '[0-9a-fA-F]{0,4}';
/** What `<IP>` stands for: an IPv4 or IPv6 address (IPv4-mapped included), no spaces, no brackets,
 *  then an optional zone index (`%eth0`) left out of the capture. Written for the linear engine's
 *  budget (nested counts multiply to 12, not `(?:hex{0,4}:){2,7}`'s 28); the group count is left
 *  open because parseAddress validates the captured text anyway. */
export const ADDRESS_REGEX = `(?<ip>${IPV4}|${HEX}(?::${HEX}){2,}(?::${IPV4})?)(?:%[0-9A-Za-z_.-]+)?`;
/** What `<PORT>` stands for. */
export const PORT_REGEX = '\\d{1,5}';

/** Messages longer than this are not matched (counted in Matcher.metrics.oversizedMessages): sshd never logs
 *  more than ~1 KiB, and matching is linear, so the cap only bounds the work per entry. */
export const MAX_MESSAGE_LENGTH = 8192;

/** Backtracks one regex call may make before V8 reruns it in the linear-time engine (V8's own
 *  default). Each backtrack undoes at most one step forward, so a call costs at most about this many
 *  steps plus one linear-engine run: linear in the message length. sshd lines need a few hundred;
 *  a lower bound only hands crafted lines sooner to the linear engine, which is slower per character
 *  (bench/README.md). */
export const BACKTRACKS_BEFORE_LINEAR = 50_000;

let linearEngineEnabled = false;
/**
 * Make every regex call in this process linear-time in the worst case: V8 runs it in its fast
 * backtracking engine (irregexp) and, after BACKTRACKS_BEFORE_LINEAR backtracks, reruns it in its
 * linear-time engine. That engine declines some syntax, and a declined regex would keep
 * backtracking, so compilePattern refuses every pattern the engine cannot run (it compiles each with
 * the `l` flag). Pure `l` regexes would be linear too, but cost 5-40x more per ordinary sshd line
 * (bench/README.md). Idempotent; Node keeps V8 flags writable (--no-freeze-flags-after-init).
 */
export function enableLinearEngine(): void {
  if (linearEngineEnabled) return;
  setFlagsFromString('--enable-experimental-regexp-engine');
  setFlagsFromString('--enable-experimental-regexp-engine-on-excessive-backtracks');
  setFlagsFromString(`--regexp-backtracks-before-fallback=${BACKTRACKS_BEFORE_LINEAR}`);
  linearEngineEnabled = true;
}

/** Compile one pattern as written in a file; throws Error (without file/item) when it is refused. */
export function compilePattern(source: string): CompiledPattern {
  const prefixed = /^\^?MESSAGE=/.test(source);
  const hasIpTag = source.includes('<IP>');
  if (hasIpTag && source.indexOf('<IP>') !== source.lastIndexOf('<IP>')) {
    throw new Error('<IP> may appear only once');
  }
  if (hasIpTag && source.includes('(?<ip>')) throw new Error('both <IP> and a group named ip');
  const expanded = source.replace('<IP>', ADDRESS_REGEX).split('<PORT>').join(PORT_REGEX);
  let probe: RegExp;
  try {
    probe = new RegExp(expanded); // syntax errors first, in V8's words; never run
  } catch (e) {
    throw new Error(`regex does not compile: ${(e as Error).message.replace(/^Invalid regular expression: /, '')}`);
  }
  // Count capture groups: an empty alternative always matches, with every group undefined.
  const groups = new RegExp(`${probe.source}|`).exec('')!.length - 1;
  const named = /\(\?<ip>/.test(expanded);
  if (groups === 0) throw new Error('no capture group, named group ip or <IP> tag for the address');
  const unsupported = unsupportedSyntax(expanded);
  if (unsupported) throw new Error(unsupported);
  enableLinearEngine();
  try {
    new RegExp(expanded, 'l'); // the proof: V8 compiles for its linear-time engine or refuses
  } catch {
    throw new Error('the linear-time regex engine cannot run this pattern (see tallow.patterns(5), SYNTAX)');
  }
  // Compiled after enableLinearEngine: runs in irregexp, falls back to the linear engine (see there).
  return { regex: new RegExp(expanded), prefixed, group: named ? 'ip' : 1, heads: literalHeads(expanded) };
}

function filterTerm(t: unknown, where: string): string {
  // The journal's own rule for field names (a leading digit is refused by sd_journal_add_match).
  if (typeof t !== 'string' || t.indexOf('=') < 1 || !isFieldName(t.slice(0, t.indexOf('=')))) {
    throw new Error(`${where}: expected "FIELD=value" (FIELD in capitals, digits, _, not starting with a digit), got ${JSON.stringify(t)}`);
  }
  return t;
}

/** `filter`: "F=v", or an array of "F=v" (OR'ed) and arrays of "F=v" (AND'ed). */
function parseFilter(f: unknown): MatchGroup[] {
  if (typeof f === 'string') return [[filterTerm(f, 'filter')]];
  if (!Array.isArray(f) || f.length === 0) {
    throw new Error('filter: expected "FIELD=value" or a non-empty array of them');
  }
  return f.map((item, i) => {
    const where = `filter[${i}]`;
    if (typeof item === 'string') return [filterTerm(item, where)];
    if (!Array.isArray(item) || item.length === 0) {
      throw new Error(`${where}: expected "FIELD=value" or a non-empty array of them`);
    }
    return item.map((t, j) => filterTerm(t, `${where}[${j}]`));
  });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const ITEM_KEYS = ['ban', 'score', 'pattern'];
const ITEM_FORM = '{"ban": seconds, "score": number, "pattern": "regex"}';

/**
 * One item. In a rule with `limit` (Ellis's form) `score` and `ban` may be left out (1 and 0) and an
 * item may be the pattern string alone; elsewhere all three keys are required, as in tallow.
 */
function parseItem(item: unknown, n: number, name: string, limited: boolean, bad: (msg: string) => never): Pattern {
  if (typeof item === 'string' && limited) item = { pattern: item };
  if (!isObject(item)) {
    bad(limited ? `expected "regex" or ${ITEM_FORM}` : `expected ${ITEM_FORM}${typeof item === 'string' ? ' (a pattern string alone needs "limit" on its rule)' : ''}`);
  }
  const it = item as Record<string, unknown>;
  for (const key of Object.keys(it)) if (!ITEM_KEYS.includes(key)) bad(`unknown key ${JSON.stringify(key)} (known: ${ITEM_KEYS.join(', ')})`);
  for (const key of limited ? ['pattern'] : ITEM_KEYS) {
    if (!(key in it)) bad(`missing key "${key}"${key === 'pattern' ? '' : ' (optional only in a rule with "limit")'}`);
  }
  const { ban = 0, score = 1, pattern } = it;
  if (typeof ban !== 'number' || !Number.isInteger(ban) || ban < 0 || ban > MAX_BAN_SECONDS) {
    bad(`"ban" must be a whole number of seconds from 0 to ${MAX_BAN_SECONDS}, got ${JSON.stringify(ban)}`);
  }
  if (typeof score !== 'number' || !Number.isFinite(score) || score < 0) {
    bad(`"score" must be a number of 0 or more, got ${JSON.stringify(score)}`);
  }
  if (typeof pattern !== 'string' || pattern === '') bad('"pattern" must be a non-empty string');
  try {
    compilePattern(pattern as string);
  } catch (e) {
    bad((e as Error).message);
  }
  return { name: `${name}#${n}`, ban: ban as number, score: score as number, source: pattern as string };
}

/** A block's keys and filter, before its items (which need to know whether its rule has a limit). */
interface BlockHead {
  keys: RuleKeys;
  filter: MatchGroup[];
  items: unknown[];
  override: boolean;
}

function parseBlockHead(block: unknown, fail: (msg: string) => never): BlockHead {
  if (!isObject(block)) fail('expected {"filter": ..., "items": [...]}');
  const blk = block as Record<string, unknown>;
  for (const key of Object.keys(blk)) {
    if (!(BLOCK_KEYS as readonly string[]).includes(key)) fail(`unknown key ${JSON.stringify(key)} (known: ${BLOCK_KEYS.join(', ')})`);
  }
  let keys: RuleKeys = {};
  try {
    keys = parseRuleKeys(blk);
  } catch (e) {
    fail((e as Error).message);
  }
  if (!('filter' in blk) && !('items' in blk) && keys.name !== undefined) {
    // An override: the keys of a rule defined elsewhere, nothing that selects or matches.
    if (keys.unit !== undefined) fail('"unit" is part of a rule\'s definition (a block with "items"): a block with a "name" and no "items" only overrides enabled and the policy keys');
    if (Object.keys(blk).length === 1) fail(`a block with only a "name" changes nothing: give "items" (and "filter" or "unit") to define rule "${keys.name}", or the keys to change`);
    return { keys, filter: [], items: [], override: true };
  }
  if (!('filter' in blk) && keys.unit === undefined) fail('missing key "filter" (or "unit")');
  if (!Array.isArray(blk.items)) fail('items' in blk ? '"items" must be an array' : 'missing key "items"');
  let filter: MatchGroup[] = [];
  if ('filter' in blk) {
    try {
      filter = parseFilter(blk.filter);
    } catch (e) {
      fail((e as Error).message);
    }
  }
  if (keys.unit !== undefined) {
    // Same field in one group is OR'ed by the journal: a second unit would widen the filter, not narrow it.
    if (filter.some((g) => g.some((t) => t.startsWith('_SYSTEMD_UNIT=')))) fail('"unit" and a _SYSTEMD_UNIT term in "filter": give one of them');
    const term = `_SYSTEMD_UNIT=${keys.unit}`;
    filter = filter.length === 0 ? [[term]] : filter.map((g) => [...g, term]);
  }
  return { keys, filter, items: blk.items as unknown[], override: false };
}

/** Parse one file's text. A file holds blocks `{filter, items}` (plus rule keys); each becomes one
 *  PatternFile (same name and path). Items are numbered from 1 across the whole file: `sshd.json#N`. */
export function parsePatternFile(text: string, name: string, path: string): PatternFile[] {
  const fail = (msg: string): never => {
    throw new PatternError(`${path}: ${msg}`);
  };
  let doc: unknown;
  try {
    doc = parseJson(text); // nesting-limited: the checks below walk the value recursively
  } catch (e) {
    const j = e as JsonError;
    fail(j.kind === 'depth' ? j.message : `JSON syntax: ${j.detail ?? j.message}`);
  }
  if (!Array.isArray(doc)) fail('expected an array of {"filter": ..., "items": [...]}');
  const blocks = doc as unknown[];
  const heads = blocks.map((block, b) => parseBlockHead(block, (msg) => fail(`block ${b + 1}: ${msg}`)));
  // Blocks sharing a name are one rule: a `limit` on any of them frees all their items' scores.
  const limited = new Set(heads.filter((h) => !h.override && h.keys.limit !== undefined && h.keys.name !== undefined).map((h) => h.keys.name));
  let n = 0;
  return heads.map((h, b) => {
    // A notify rule never scores: its items may be the pattern alone, as under `limit`.
    const lenient = h.keys.limit !== undefined || h.keys.action === 'notify' || (h.keys.name !== undefined && limited.has(h.keys.name));
    const parsed = h.items.map((item) => {
      n++;
      return parseItem(item, n, name, lenient, (msg) => {
        throw new PatternError(`${path}: item ${n}: ${msg}`);
      });
    });
    // A notify rule's match never scores, wherever it is counted (`tallow test` too): score 0, ban 0.
    const patterns = h.keys.action === 'notify' ? parsed.map((p) => ({ ...p, score: 0, ban: 0 })) : parsed;
    return { name, path, filter: h.filter, patterns, block: b + 1, blocks: blocks.length, keys: h.keys, override: h.override };
  });
}

function jsonFiles(dir: string, required: boolean): string[] {
  try {
    return readdirSync(dir)
      .filter((f) => f.endsWith('.json'))
      .sort();
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT' && !required) return [];
    throw new PatternError(`${dir}: cannot read directory: ${err.code ?? err.message}`);
  }
}

/** Shipped directory first, then the administrator's: same name overrides, others add. All or nothing. */
export function loadPatternFiles(shippedDir: string, localDir: string): PatternFile[] {
  const chosen = new Map<string, string>();
  for (const f of jsonFiles(shippedDir, false)) chosen.set(f, join(shippedDir, f));
  for (const f of jsonFiles(localDir, false)) chosen.set(f, join(localDir, f));
  const out: PatternFile[] = [];
  for (const name of [...chosen.keys()].sort()) {
    const path = chosen.get(name)!;
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (e) {
      throw new PatternError(`${path}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    out.push(...parsePatternFile(text, name, path));
  }
  return out;
}

/** The shipped patterns directory (patterns/ beside the program). */
export function shippedPatternsDir(): string {
  // dist/src/patterns.js -> <package>/patterns; also works from src/ when run with ts tooling.
  const up = __dirname.split(/[\\/]/).includes('dist') ? '../..' : '..';
  return resolve(__dirname, up, 'patterns');
}

/** Journal match groups selecting every entry any file wants (union of filters). */
export function journalMatches(files: PatternFile[]): MatchGroup[] {
  const seen = new Set<string>();
  const out: MatchGroup[] = [];
  for (const f of files) {
    for (const g of f.filter) {
      const key = [...g].sort().join('\n');
      if (!seen.has(key)) {
        seen.add(key);
        out.push([...g]);
      }
    }
  }
  return out;
}

/**
 * Filters that any local user can satisfy: a group with no field journald sets itself (only
 * SYSLOG_IDENTIFIER, MESSAGE, SYSLOG_PID...), or a program's `_EXE`/`_COMM` without `_UID=0` (a
 * program that is not setuid can be run by anyone, with LD_PRELOAD, and log as itself). Trusted:
 * `_SYSTEMD_UNIT` (from the cgroup), or `_UID=0` beside the identifying field. One message per
 * block, naming it, for the start-up log.
 */
export function untrustedFilters(files: PatternFile[]): string[] {
  const out: string[] = [];
  const blocks = new Map<string, number>();
  for (const f of files) {
    const n = (blocks.get(f.path) ?? 0) + 1;
    blocks.set(f.path, n);
    for (const g of f.filter) {
      const fields = g.map((t) => t.slice(0, t.indexOf('=')));
      if (fields.includes('_SYSTEMD_UNIT') || g.includes('_UID=0')) continue;
      const why = fields.some((x) => x.startsWith('_'))
        ? 'does not pin _UID=0: any local user can run that program and log as it'
        : 'trusts only fields the sender chooses: any local user can forge its entries';
      out.push(`${f.path} (block ${n}): filter ${g.join(' + ')} ${why} (add "_UID=0" to the group, or filter on _SYSTEMD_UNIT)`);
    }
  }
  return out;
}

/** Journal fields the matcher needs (MESSAGE plus every filter field). */
export function neededFields(files: PatternFile[]): string[] {
  const fields = new Set<string>(['MESSAGE']);
  for (const f of files) for (const g of f.filter) for (const t of g) fields.add(t.slice(0, t.indexOf('=')));
  return [...fields];
}
