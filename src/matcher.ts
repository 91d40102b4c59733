// Entry -> match. Each block's filter is evaluated here, in JS, against the entry's fields: the
// journal is opened with the union of all filters, so an entry must still be tested only against
// the patterns of the block(s) whose own filter selects it. No journal or firewall calls.
import type { JournalEntry, MatchGroup } from './journal';
import type { PatternFile, Pattern } from './patterns';
import { compilePattern, MAX_MESSAGE_LENGTH } from './patterns';
import type { Address } from './address';
import { parseAddress } from './address';
import { Metrics } from './metrics';
import type { Rule } from './rule';
import { resolveRules, type RuleBlock } from './rules';
import { defaultConfig } from './config';

export interface Match extends Address {
  pattern: Pattern;
  /** the pattern file's name, `sshd.json` */
  file: string;
  /** the rule whose block matched: its policy scores the match */
  rule: Rule;
  /** Notify rules only: the pattern's named groups `user`, `method`, `fingerprint` ('' when absent). */
  login?: LoginFields;
}

export interface LoginFields {
  user: string;
  method: string;
  fingerprint: string;
}

/** One filter group as sd-journal reads it: same field OR'ed, different fields AND'ed. */
type CompiledGroup = Array<[field: string, values: Set<string>]>;

interface CompiledEntry {
  pattern: Pattern;
  regex: RegExp;
  prefixed: boolean;
  group: 'ip' | 1;
  heads: string[];
}

/** A pattern as a candidate for messages with a given first character: only the heads that can match. */
interface Candidate {
  entry: CompiledEntry;
  heads: string[];
}

interface CompiledFile {
  name: string;
  rule: Rule;
  groups: CompiledGroup[];
  /** The patterns (in file order) that can match a message starting with this character... */
  byFirstChar: Map<string, Candidate[]>;
  /** ...and those for any other first character (no literal start, or written as MESSAGE=). */
  anyFirstChar: Candidate[];
}

/** Most journal lines start with a character no pattern can start with: look each file's
 *  candidates up by it, so a line costs one Map lookup per file, not a test per pattern. */
function compileFile(f: RuleBlock): CompiledFile {
  const patterns: CompiledEntry[] = f.patterns.map((pattern) => ({ pattern, ...compilePattern(pattern.source) }));
  const open = (p: CompiledEntry) => p.heads.length === 0 || p.prefixed;
  const byFirstChar = new Map<string, Candidate[]>();
  for (const c of new Set(patterns.flatMap((p) => (open(p) ? [] : p.heads.map((h) => h[0]))))) {
    const list: Candidate[] = [];
    for (const p of patterns) {
      if (open(p)) list.push({ entry: p, heads: p.heads });
      else if (p.heads.some((h) => h[0] === c)) list.push({ entry: p, heads: p.heads.filter((h) => h[0] === c) });
    }
    byFirstChar.set(c, list);
  }
  return { name: f.name, rule: f.rule, groups: f.filter.map(compileGroup), byFirstChar, anyFirstChar: patterns.filter(open).map((p) => ({ entry: p, heads: p.heads })) };
}

function startsWithAny(text: string, heads: string[]): boolean {
  for (let i = 0; i < heads.length; i++) if (text.startsWith(heads[i])) return true;
  return heads.length === 0;
}

function compileGroup(group: MatchGroup): CompiledGroup {
  const byField = new Map<string, Set<string>>();
  for (const term of group) {
    const eq = term.indexOf('=');
    const field = term.slice(0, eq);
    let values = byField.get(field);
    if (!values) byField.set(field, (values = new Set()));
    values.add(term.slice(eq + 1));
  }
  return [...byField];
}

/** A filter group reached through its key term: the block it belongs to and its other fields. */
interface GroupRef {
  block: number;
  rest: CompiledGroup;
}

/** Fields nearly every entry of a machine shares: poor keys, used only when a group has no other. */
const COMMON_FIELDS = new Set(['_UID', '_GID', '_TRANSPORT', 'PRIORITY', 'SYSLOG_FACILITY', '_HOSTNAME', '_BOOT_ID', '_MACHINE_ID']);

/**
 * Which blocks' filters select an entry, at a cost that does not grow with the number of blocks:
 * each filter group is filed under one of its fields and values (its key term), so an entry costs
 * one lookup per distinct key field (a handful: _SYSTEMD_UNIT, _EXE, SYSLOG_IDENTIFIER...) and a
 * check of the groups filed under its own values; other rules' groups are never looked at.
 */
class FilterIndex {
  private readonly fields: string[] = [];
  /** Parallel to `fields`: each key field's groups by value. */
  private readonly byValue: Array<Map<string, GroupRef[]>> = [];
  /** The selected blocks as bits, 32 a word: no allocation, no sorting, read in block order. */
  readonly bits: Uint32Array;

  constructor(private readonly blocks: number, filters: CompiledGroup[][]) {
    this.bits = new Uint32Array(Math.ceil(blocks / 32));
    filters.forEach((groups, block) => {
      for (const g of groups) {
        const key = Math.max(0, g.findIndex(([field]) => !COMMON_FIELDS.has(field)));
        const [field, values] = g[key];
        const rest = g.filter((_, i) => i !== key);
        let f = this.fields.indexOf(field);
        if (f < 0) {
          f = this.fields.push(field) - 1;
          this.byValue.push(new Map());
        }
        for (const v of values) {
          const refs = this.byValue[f].get(v) ?? [];
          refs.push({ block, rest });
          this.byValue[f].set(v, refs);
        }
      }
    });
  }

  /** Sets `bits` to the blocks selecting `fields`. */
  select(fields: Record<string, string>): void {
    const bits = this.bits;
    for (let w = 0; w < bits.length; w++) bits[w] = 0; // (fill() is a call the JIT does not inline)
    let found = 0;
    // Once every block is selected there is nothing left to find (one rule: the first hit).
    for (let f = 0; f < this.fields.length && found < this.blocks; f++) {
      const v = fields[this.fields[f]];
      if (v === undefined) continue;
      const refs = this.byValue[f].get(v);
      if (refs === undefined) continue;
      for (let i = 0; i < refs.length; i++) {
        const block = refs[i].block;
        const bit = 1 << (block & 31);
        if ((bits[block >>> 5] & bit) === 0 && holds(refs[i].rest, fields)) {
          bits[block >>> 5] |= bit;
          found++;
        }
      }
    }
  }
}

function holds(group: CompiledGroup, fields: Record<string, string>): boolean {
  for (let i = 0; i < group.length; i++) {
    const v = fields[group[i][0]];
    if (v === undefined || !group[i][1].has(v)) return false;
  }
  return true;
}

function builtInRules(files: ReadonlyArray<PatternFile>): RuleBlock[] {
  const { threshold, expires } = defaultConfig();
  return resolveRules([...files], { threshold, expires }).blocks;
}

export class Matcher {
  private readonly files: CompiledFile[];
  private readonly index: FilterIndex;

  /**
   * The blocks to match with (the engine gives the enabled rules' blocks only). Blocks given without
   * their rules (tests, tools: plain parsed files) are all used, enabled or not, with rules resolved
   * against tallow.conf's built-in threshold and expires. Counts matches per file, invalid
   * addresses and oversized messages into `metrics`.
   */
  constructor(
    blocks: ReadonlyArray<PatternFile | RuleBlock>,
    readonly metrics: Metrics = new Metrics(),
  ) {
    const withRules = blocks.every((b): b is RuleBlock => 'rule' in b) ? blocks : builtInRules(blocks);
    this.files = withRules.map(compileFile);
    this.index = new FilterIndex(this.files.length, this.files.map((f) => f.groups));
  }

  /** The first pattern (of the files whose filter selects the entry) that matches, with a valid address. */
  match(entry: JournalEntry): Match | null {
    const message = entry.fields.MESSAGE;
    if (message === undefined) return null;
    if (message.length > MAX_MESSAGE_LENGTH) {
      // Never truncate: the tail would then be attacker-chosen text that could pass for a line end.
      this.metrics.oversizedMessages++;
      return null;
    }
    let prefixedText: string | undefined;
    this.index.select(entry.fields);
    const bits = this.index.bits;
    for (let w = 0; w < bits.length; w++) {
      for (let word = bits[w]; word !== 0; word &= word - 1) {
        // The lowest bit left: blocks are tried in file order.
        const file = this.files[w * 32 + 31 - Math.clz32(word & -word)];
        const candidates = file.byFirstChar.get(message[0]) ?? file.anyFirstChar;
        for (let i = 0; i < candidates.length; i++) {
          const p = candidates[i].entry;
          const text = p.prefixed ? (prefixedText ??= `MESSAGE=${message}`) : message;
          // Cheap literal test first (see literalHeads): most lines never reach a regex.
          if (!startsWithAny(text, candidates[i].heads)) continue;
          const m = p.regex.exec(text);
          if (m === null) continue;
          const raw = p.group === 'ip' ? m.groups?.ip : m[1];
          const address = raw === undefined ? null : parseAddress(raw);
          if (address === null) {
            // First match wins even when its address is bad: a later pattern must not get a second
            // chance to read an address out of the same (possibly crafted) line.
            this.metrics.invalidAddresses++;
            return null;
          }
          Metrics.bump(this.metrics.matchesByFile, file.name);
          const found: Match = { address: address.address, family: address.family, pattern: p.pattern, file: file.name, rule: file.rule };
          // Only a notify rule's match is reported with who logged in; other rules pay nothing for it.
          if (file.rule.action === 'notify') found.login = { user: m.groups?.user ?? '', method: m.groups?.method ?? '', fingerprint: m.groups?.fingerprint ?? '' };
          return found;
        }
      }
    }
    return null;
  }
}
