// What a pattern may use, and its fixed literal start. Every pattern must be one V8's linear-time
// regex engine can run (checked with the `l` flag, see compilePattern), because V8 reruns a match
// there once it backtracks too much: no input can make matching super-linear. That engine
// refuses backreferences, lookarounds, flags and counted repeats it would have to unroll too far;
// this scanner names the construct, so the refusal says what to change instead of V8's "Cannot be
// executed in linear time". It applies Node 20's rules on every Node version (newer V8 accepts a
// little more, e.g. lookbehinds), so a file that loads on one version loads on all.
//
// The scanner reads a source V8 has already compiled (without `l`), makes one pass, and moves
// forward on every step: it cannot loop, whatever the text.

/** The linear engine copies a counted repeat's body once per count; nested counts multiply. V8
 *  refuses a product above 16 (src/regexp/experimental/experimental-compiler.cc). */
export const MAX_REPLICATION = 16;

const QUANTIFIER = /^\{(\d+)(?:(,)(\d*))?\}/;

/** How many times the engine copies a repeat's body (Node 20: `{n,}` and `*`/`+` count n + 1). */
function replication(min: number, max: number): number {
  return max === Infinity ? min + 1 : max;
}

/** Capture groups and whether any is named: decides what `\N` and `\k<...>` mean (Annex B). */
function countGroups(src: string): { groups: number; named: boolean } {
  let groups = 0;
  let named = false;
  let inClass = false;
  for (let i = 0; i < src.length; i++) {
    const c = src[i];
    if (c === '\\') i++;
    else if (inClass) inClass = c !== ']';
    else if (c === '[') inClass = true;
    else if (c === '(') {
      if (src[i + 1] !== '?') groups++;
      else if (src[i + 2] === '<' && src[i + 3] !== '=' && src[i + 3] !== '!') (groups++, (named = true));
    }
  }
  return { groups, named };
}

interface Frame {
  /** Largest replication product inside this group so far. */
  product: number;
  /** The current alternative can match nothing (so far), and some finished one can. */
  altNullable: boolean;
  anyNullable: boolean;
}

const NULLABLE_REPEAT =
  'a repeated or optional group that can match nothing (like (?:a*)? or (?:|a)+): JavaScript and the linear-time engine disagree on such repeats, so matches would depend on which engine ran; make the group consume at least one character';

/** null when the engine can run `source` as written, else what to change. `source` must compile. */
export function unsupportedSyntax(source: string): string | null {
  const { groups, named } = countGroups(source);
  const stack: Frame[] = [{ product: 1, altNullable: true, anyNullable: false }];
  // The atom just read, waiting for a possible quantifier: its inner replication product and
  // whether it can match nothing; null after a quantifier, `(`, `|` or at the start.
  let atom: { product: number; nullable: boolean; group: boolean } | null = null;
  const commit = (): void => {
    if (atom) stack[stack.length - 1].altNullable &&= atom.nullable;
    atom = null;
  };
  for (let i = 0; i < source.length; ) {
    const c = source[i];
    let repeat: [number, number] | null = null;
    if (c === '*' || c === '+' || c === '?') {
      repeat = c === '*' ? [0, Infinity] : c === '+' ? [1, Infinity] : [0, 1];
      i++;
    } else if (c === '{' && QUANTIFIER.test(source.slice(i, i + 24))) {
      const m = QUANTIFIER.exec(source.slice(i, i + 24))!;
      const min = Number(m[1]);
      const max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
      if (min > MAX_REPLICATION || (max !== Infinity && max > MAX_REPLICATION)) {
        return `repeat count ${m[0]} above ${MAX_REPLICATION}: the linear-time engine unrolls counted repeats; use * or + instead (matching is linear whatever the input)`;
      }
      repeat = [min, max];
      i += m[0].length;
    }
    if (repeat) {
      if (source[i] === '?') i++; // lazy: same engine cost
      if (!atom) continue; // V8 already refused what is not an atom; `{` alone is a literal
      const product: number = replication(repeat[0], repeat[1]) * atom.product;
      if (product > MAX_REPLICATION) {
        return `repeats nested too deep: their counts multiply to ${product}, above ${MAX_REPLICATION} ({n,m} counts m, * 1, + 2, <IP> 12); the linear-time engine unrolls them: flatten the inner repeat or use * or +`;
      }
      if (atom.nullable && atom.group) return NULLABLE_REPEAT;
      const top = stack[stack.length - 1];
      top.product = Math.max(top.product, product);
      atom = { product, nullable: atom.nullable || repeat[0] === 0, group: false };
      commit();
      continue;
    }
    commit();
    if (c === '\\') {
      const e = source[i + 1] ?? '';
      if (/[1-9]/.test(e)) {
        const digits = /^\d+/.exec(source.slice(i + 1, i + 12))![0];
        if (Number(digits) <= groups) return `backreference \\${digits}: not supported (patterns run in a linear-time engine, which cannot match a backreference)`;
      }
      if (e === 'k' && named && source[i + 2] === '<') {
        return 'backreference \\k<...>: not supported (patterns run in a linear-time engine, which cannot match a backreference)';
      }
      const assertion = e === 'b' || e === 'B';
      atom = { product: 1, nullable: assertion, group: assertion };
      i += 2;
    } else if (c === '[') {
      i++;
      if (source[i] === '^') i++;
      while (i < source.length && source[i] !== ']') i += source[i] === '\\' ? 2 : 1;
      i++;
      atom = { product: 1, nullable: false, group: false };
    } else if (c === '(') {
      let header = 1; // `(`, `(?:` or `(?<name>`: skipped, it matches nothing itself
      if (source[i + 1] === '?') {
        const kind = source[i + 2];
        if (kind === '=' || kind === '!' || (kind === '<' && (source[i + 3] === '=' || source[i + 3] === '!'))) {
          return 'lookaround (?=...), (?!...), (?<=...) or (?<!...): not supported (patterns run in a linear-time engine); anchor the pattern and match the text instead';
        }
        if (kind !== ':' && kind !== '<') {
          return 'inline flags such as (?i:...): not supported; write the cases out, e.g. [Aa]uthentication';
        }
        const close = source.indexOf('>', i + 3);
        header = kind === ':' || close < 0 ? 3 : close - i + 1;
      }
      stack.push({ product: 1, altNullable: true, anyNullable: false });
      i += header;
    } else if (c === ')') {
      const frame = stack.length > 1 ? stack.pop()! : { product: 1, altNullable: false, anyNullable: false };
      const nullable = frame.anyNullable || frame.altNullable;
      const top = stack[stack.length - 1];
      top.product = Math.max(top.product, frame.product);
      atom = { product: frame.product, nullable, group: true };
      i++;
    } else if (c === '|') {
      const top = stack[stack.length - 1];
      top.anyNullable ||= top.altNullable;
      top.altNullable = true;
      i++;
    } else if (c === '^' || c === '$') {
      atom = { product: 1, nullable: true, group: true }; // V8 refuses a quantifier here anyway
      i++;
    } else {
      atom = { product: 1, nullable: false, group: false };
      i++;
    }
  }
  return null;
}

/** True when `|` splits the whole pattern (outside any group or class). */
function topLevelAlternation(source: string): boolean {
  let depth = 0;
  let inClass = false;
  for (let i = 0; i < source.length; i++) {
    const c = source[i];
    if (c === '\\') i++;
    else if (inClass) inClass = c !== ']';
    else if (c === '[') inClass = true;
    else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === '|' && depth === 0) return true;
  }
  return false;
}

/** The literal characters after a leading `^` ('' when not anchored or alternating at the top). */
function literalPrefix(source: string): string {
  if (source[0] !== '^' || topLevelAlternation(source)) return '';
  let out = '';
  for (let i = 1; i < source.length; ) {
    let ch: string;
    let next: number;
    const c = source[i];
    if (c === '\\') {
      const e = source[i + 1];
      if (e === undefined || /[0-9A-Za-z]/.test(e)) break; // \d, \x41, \1...: not one fixed character
      (ch = e), (next = i + 2);
    } else if ('^$.|?*+()[]{}'.includes(c)) {
      break;
    } else {
      (ch = c), (next = i + 1);
    }
    const after = source[next];
    if (after === '?' || after === '*' || after === '+' || after === '{') break; // optional or repeated
    out += ch;
    i = next;
  }
  return out;
}

/** Index just past the group opened at `open` (source[open] is `(`), or -1. */
function groupEnd(source: string, open: number): number {
  let depth = 0;
  let inClass = false;
  for (let i = open; i < source.length; i++) {
    const c = source[i];
    if (c === '\\') i++;
    else if (inClass) inClass = c !== ']';
    else if (c === '[') inClass = true;
    else if (c === '(') depth++;
    else if (c === ')' && --depth === 0) return i + 1;
  }
  return -1;
}

/**
 * Texts of which every match starts with one: the literal start after `^`, looking through
 * leading optional groups (`^(?:error: )?Received` gives `error: ` and `Received`). Empty when
 * some match may start with anything. The matcher checks them with startsWith before running the
 * regex: most journal lines then never reach a regex at all.
 */
export function literalHeads(source: string): string[] {
  const heads: string[] = [];
  let rest = source;
  while (rest.startsWith('^(?:')) {
    const end = groupEnd(rest, 1);
    if (end < 0 || rest[end] !== '?') break;
    heads.push(literalPrefix(`^${rest.slice(4, end - 1)}`));
    rest = `^${rest.slice(end + (rest[end + 1] === '?' ? 2 : 1))}`;
  }
  heads.push(literalPrefix(rest));
  return heads.includes('') ? [] : heads;
}
