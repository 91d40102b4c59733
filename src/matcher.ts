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

function selects(groups: CompiledGroup[], fields: Record<string, string>): boolean {
  for (const g of groups) {
    let all = true;
    for (const [field, values] of g) {
      const v = fields[field];
      if (v === undefined || !values.has(v)) {
        all = false;
        break;
      }
    }
    if (all) return true;
  }
  return false;
}

function builtInRules(files: ReadonlyArray<PatternFile>): RuleBlock[] {
  const { threshold, expires } = defaultConfig();
  return resolveRules([...files], { threshold, expires }).blocks;
}

export class Matcher {
  private readonly files: CompiledFile[];

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
    for (const file of this.files) {
      if (!selects(file.groups, entry.fields)) continue;
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
        return { address: address.address, family: address.family, pattern: p.pattern, file: file.name, rule: file.rule };
      }
    }
    return null;
  }
}
