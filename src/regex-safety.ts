// Load-time check that a pattern cannot backtrack exponentially: attacker text (user names, client
// banners) is inside every message, so a pattern such as `(a+)+$` would let one log line stall the
// daemon. The check is conservative (it reads the regex's structure, not its meaning) and rejects:
//   - a repeated group holding an unbounded quantifier, or an unbounded repeat holding any repeat
//     (`(a+)+`, `(\w*x)*`, `(a{1,3})+`); bounded inside bounded (`(?:[0-9a-f]{0,4}:){2,7}`) is fine;
//   - an unbounded repeat of alternatives that can start with the same character or be empty
//     (`(a|ab)*`, `(\w|\d)+`), the other classic exponential shape.
// Polynomial shapes (`.* for .* from`, as in tallow's own files) stay allowed: they are bounded by
// the matcher's message length cap and by V8 switching to its linear engine on excessive
// backtracking (see enableLinearFallback in patterns.ts).

/** ASCII membership as 4 x 32 bits, plus "some character above 127". */
interface CharSet {
  bits: Uint32Array;
  other: boolean;
}

type Node =
  | { t: 'alt'; seqs: Node[][] }
  | { t: 'chars'; set: CharSet }
  | { t: 'group'; body: Node }
  | { t: 'zero' } // assertions and lookarounds: consume nothing
  | { t: 'any' } // backreference: could be anything, even empty
  | { t: 'quant'; min: number; max: number; body: Node };

function emptySet(): CharSet {
  return { bits: new Uint32Array(4), other: false };
}
function fullSet(): CharSet {
  return { bits: Uint32Array.from([~0, ~0, ~0, ~0]), other: true };
}
function addRange(s: CharSet, lo: number, hi: number): void {
  for (let c = lo; c <= Math.min(hi, 127); c++) s.bits[c >> 5] |= 1 << (c & 31);
  if (hi > 127) s.other = true;
}
function union(a: CharSet, b: CharSet): CharSet {
  const r = emptySet();
  for (let i = 0; i < 4; i++) r.bits[i] = a.bits[i] | b.bits[i];
  r.other = a.other || b.other;
  return r;
}
function intersects(a: CharSet, b: CharSet): boolean {
  for (let i = 0; i < 4; i++) if (a.bits[i] & b.bits[i]) return true;
  return a.other && b.other;
}
function negate(s: CharSet): CharSet {
  const r = emptySet();
  for (let i = 0; i < 4; i++) r.bits[i] = ~s.bits[i];
  r.other = true; // conservative: some non-ASCII character remains
  return r;
}
function classEscape(ch: string): CharSet | null {
  const s = emptySet();
  switch (ch.toLowerCase()) {
    case 'd':
      addRange(s, 48, 57);
      break;
    case 'w':
      addRange(s, 48, 57), addRange(s, 65, 90), addRange(s, 97, 122), addRange(s, 95, 95);
      break;
    case 's':
      addRange(s, 9, 13), addRange(s, 32, 32);
      s.other = true;
      break;
    default:
      return null;
  }
  return ch === ch.toUpperCase() ? negate(s) : s;
}
function single(code: number): CharSet {
  const s = emptySet();
  addRange(s, code, code);
  return s;
}

class Parser {
  private i = 0;
  constructor(private readonly src: string) {}

  parse(): Node {
    const n = this.alt();
    return n;
  }

  private peek(): string {
    return this.src[this.i];
  }

  private alt(): Node {
    const seqs: Node[][] = [this.seq()];
    while (this.peek() === '|') {
      this.i++;
      seqs.push(this.seq());
    }
    return { t: 'alt', seqs };
  }

  private seq(): Node[] {
    const items: Node[] = [];
    while (this.i < this.src.length && this.peek() !== '|' && this.peek() !== ')') {
      const atom = this.atom();
      items.push(this.quantifier(atom));
    }
    return items;
  }

  private quantifier(atom: Node): Node {
    const c = this.peek();
    let min: number;
    let max: number;
    if (c === '*') (min = 0), (max = Infinity), this.i++;
    else if (c === '+') (min = 1), (max = Infinity), this.i++;
    else if (c === '?') (min = 0), (max = 1), this.i++;
    else if (c === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(this.src.slice(this.i));
      if (!m) return atom; // a literal '{' (Annex B)
      min = Number(m[1]);
      max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
      this.i += m[0].length;
    } else return atom;
    if (this.peek() === '?') this.i++; // lazy: same shapes, same risks
    return { t: 'quant', min, max, body: atom };
  }

  private atom(): Node {
    const c = this.src[this.i++];
    switch (c) {
      case '(': {
        let zero = false;
        if (this.peek() === '?') {
          const rest = this.src.slice(this.i, this.i + 3);
          if (rest.startsWith('?:')) this.i += 2;
          else if (rest.startsWith('?=') || rest.startsWith('?!')) (this.i += 2), (zero = true);
          else if (rest.startsWith('?<=') || rest.startsWith('?<!')) (this.i += 3), (zero = true);
          else if (rest.startsWith('?<')) this.i = this.src.indexOf('>', this.i) + 1;
        }
        const body = this.alt();
        if (this.peek() === ')') this.i++;
        return zero ? { t: 'zero' } : { t: 'group', body };
      }
      case '[':
        return { t: 'chars', set: this.charClass() };
      case '.': {
        const s = fullSet();
        s.bits[0] &= ~((1 << 10) | (1 << 13));
        return { t: 'chars', set: s };
      }
      case '^':
      case '$':
        return { t: 'zero' };
      case '\\':
        return this.escape();
      default:
        return { t: 'chars', set: single(c.charCodeAt(0)) };
    }
  }

  private escape(): Node {
    const c = this.src[this.i++] ?? '\\';
    const cls = classEscape(c);
    if (cls) return { t: 'chars', set: cls };
    if (c === 'b' || c === 'B') return { t: 'zero' };
    if (/[1-9]/.test(c)) {
      while (/\d/.test(this.peek() ?? '')) this.i++;
      return { t: 'any' };
    }
    if (c === 'k' && this.peek() === '<') {
      this.i = this.src.indexOf('>', this.i) + 1;
      return { t: 'any' };
    }
    return { t: 'chars', set: single(this.escapedCode(c)) };
  }

  /** Code of an escaped literal character whose letter `c` was just read. */
  private escapedCode(c: string): number {
    const hex = (n: number) => {
      const h = this.src.slice(this.i, this.i + n);
      if (/^[0-9a-fA-F]+$/.test(h) && h.length === n) {
        this.i += n;
        return parseInt(h, 16);
      }
      return c.charCodeAt(0);
    };
    switch (c) {
      case 'n':
        return 10;
      case 'r':
        return 13;
      case 't':
        return 9;
      case 'f':
        return 12;
      case 'v':
        return 11;
      case '0':
        return 0;
      case 'x':
        return hex(2);
      case 'u':
        return hex(4);
      case 'c': {
        const l = this.peek();
        if (l && /[a-zA-Z]/.test(l)) {
          this.i++;
          return l.charCodeAt(0) % 32;
        }
        return 92;
      }
      default:
        return c.charCodeAt(0);
    }
  }

  private charClass(): CharSet {
    let negated = false;
    if (this.peek() === '^') (negated = true), this.i++;
    let set = emptySet();
    while (this.i < this.src.length && this.peek() !== ']') {
      const lo = this.classAtom();
      if (lo instanceof Object) {
        set = union(set, lo);
        continue;
      }
      if (this.peek() === '-' && this.src[this.i + 1] !== ']' && this.i + 1 < this.src.length) {
        this.i++;
        const hi = this.classAtom();
        if (hi instanceof Object) {
          set = union(union(set, single(lo)), union(single(45), hi));
        } else {
          addRange(set, lo, hi);
        }
      } else {
        addRange(set, lo, lo);
      }
    }
    this.i++; // ']'
    return negated ? negate(set) : set;
  }

  /** A character code, or a set for \d \w \s and friends. */
  private classAtom(): number | CharSet {
    const c = this.src[this.i++];
    if (c !== '\\') return c.charCodeAt(0);
    const e = this.src[this.i++] ?? '\\';
    const cls = classEscape(e);
    if (cls) return cls;
    if (e === 'b') return 8;
    return this.escapedCode(e);
  }
}

function nullable(n: Node): boolean {
  switch (n.t) {
    case 'alt':
      return n.seqs.some((s) => s.every(nullable));
    case 'chars':
      return false;
    case 'group':
      return nullable(n.body);
    case 'zero':
    case 'any':
      return true;
    case 'quant':
      return n.min === 0 || nullable(n.body);
  }
}

/** Characters a match of `n` can start with. */
function first(n: Node): CharSet {
  switch (n.t) {
    case 'alt':
      return n.seqs.map(firstOfSeq).reduce(union, emptySet());
    case 'chars':
      return n.set;
    case 'group':
      return first(n.body);
    case 'zero':
      return emptySet();
    case 'any':
      return fullSet();
    case 'quant':
      return first(n.body);
  }
}
function firstOfSeq(seq: Node[]): CharSet {
  let s = emptySet();
  for (const n of seq) {
    s = union(s, first(n));
    if (!nullable(n)) break;
  }
  return s;
}

function children(n: Node): Node[] {
  if (n.t === 'alt') return n.seqs.flat();
  if (n.t === 'group' || n.t === 'quant') return [n.body];
  return [];
}
function someQuant(n: Node, pred: (q: Node & { t: 'quant' }) => boolean): boolean {
  return children(n).some((c) => (c.t === 'quant' && pred(c)) || someQuant(c, pred));
}

function allChars(n: Node): CharSet {
  if (n.t === 'chars') return n.set;
  if (n.t === 'any') return fullSet();
  return children(n).map(allChars).reduce(union, emptySet());
}

/** A repeated body that starts with a fixed character the rest of the body cannot match (`(?:-[a-z]+)*`):
 *  each iteration begins at such a character found nowhere else in it, so the iterations cannot be split another way. */
function delimited(body: Node): boolean {
  while (body.t === 'group') body = body.body;
  if (body.t !== 'alt' || body.seqs.length !== 1) return false;
  const head = body.seqs[0][0];
  if (!head || head.t !== 'chars') return false;
  // The head must not appear anywhere else in the body, or '-?' style parts could move the split.
  return !body.seqs[0].slice(1).some((n) => intersects(head.set, allChars(n)));
}

/** Bounded repeats above this count are treated like unbounded ones. */
const BIG = 16;

/** null when the pattern is safe, else why it is refused. `source` must already compile. */
export function backtrackingRisk(source: string): string | null {
  const root = new Parser(source).parse();
  const check = (n: Node): string | null => {
    if (n.t === 'quant' && n.max > 1) {
      const unbounded = n.max > BIG;
      const nested = someQuant(n.body, (q) => q.max > BIG) || (unbounded && someQuant(n.body, (q) => q.max > 1));
      if (nested && !delimited(n.body)) {
        return "nested quantifier (a repeated group holding a repeat, like '(a+)+'): matching can take exponential time; rewrite it without the inner or outer repeat";
      }
      let body = n.body;
      while (body.t === 'group') body = body.body;
      if (unbounded && body.t === 'alt' && body.seqs.length > 1) {
        const firsts = body.seqs.map(firstOfSeq);
        const empty = body.seqs.some((s) => s.every(nullable));
        const overlap = firsts.some((a, i) => firsts.some((b, j) => j > i && intersects(a, b)));
        if (empty || overlap) {
          return "repeated alternatives that can match the same text (like '(a|ab)*'): matching can take exponential time; make the alternatives start differently";
        }
      }
    }
    for (const c of children(n)) {
      const r = check(c);
      if (r) return r;
    }
    return null;
  };
  return check(root);
}
