// JSON from outside (pattern files, control requests, the state file) with a nesting limit.
// V8's JSON.parse is iterative and accepts any depth, but everything that walks the value
// afterwards (JSON.stringify in an error message, a validator, structuredClone) recurses and
// throws RangeError "Maximum call stack size exceeded" at a few thousand levels. None of our
// formats nests deeper than 4, so a document deeper than the limit is refused before it is parsed,
// by one linear pass that only counts brackets outside strings.

/** Deeper than any of our formats by far; shallow enough for every recursive walker. */
export const MAX_JSON_DEPTH = 64;

/** The text is not JSON we accept. `message` never quotes the text (it may be anyone's bytes). */
export class JsonError extends Error {
  constructor(
    message: string,
    /** Offset (UTF-16 units) where it went wrong, when known. */
    readonly position: number | null,
    /** 'depth': nested too deep; 'syntax': JSON.parse refused it. */
    readonly kind: 'depth' | 'syntax',
    /** JSON.parse's own message (syntax only). It may quote the text: not for logs of untrusted files. */
    readonly detail: string | null = null,
  ) {
    super(message);
    this.name = 'JsonError';
  }
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_ARRAY = 0x5b;
const OPEN_OBJECT = 0x7b;
const CLOSE_ARRAY = 0x5d;
const CLOSE_OBJECT = 0x7d;

/** Offset of the first bracket that opens level `maxDepth + 1`, or -1. Linear; never throws. */
export function depthExceeded(text: string, maxDepth: number): number {
  let depth = 0;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      // Skip the string: the next quote not escaped. indexOf keeps long strings cheap.
      for (;;) {
        const q = text.indexOf('"', i + 1);
        if (q < 0) return -1; // unterminated: JSON.parse will say so
        let slashes = 0;
        for (let k = q - 1; k > i && text.charCodeAt(k) === BACKSLASH; k--) slashes++;
        i = q;
        if (slashes % 2 === 0) break;
      }
    } else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > maxDepth) return i;
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      depth--;
    }
  }
  return -1;
}

/** 1-based line and column of an offset, for messages. */
export function lineColumn(text: string, position: number): string {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i >= 0 && i < position; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return `line ${line}, column ${position - lineStart + 1}`;
}

/**
 * JSON.parse with a nesting limit. Throws JsonError: `nested deeper than N levels at line L,
 * column C`, or `not valid JSON at line L, column C` (truncated or damaged) without quoting the text.
 */
export function parseJson(text: string, maxDepth: number = MAX_JSON_DEPTH): unknown {
  const deep = depthExceeded(text, maxDepth);
  if (deep >= 0) {
    throw new JsonError(`nested deeper than ${maxDepth} levels at ${lineColumn(text, deep)}`, deep, 'depth');
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    const detail = (e as Error).message;
    // V8 gives the offset in most messages ("... in JSON at position 12"), and none at the end
    // of the text ("Unexpected end of JSON input").
    const m = /at position (\d+)/.exec(detail);
    const position = m ? Number(m[1]) : /end of JSON input/.test(detail) ? text.length : null;
    const where = position === null ? '' : position >= text.length ? ' (it ends too early)' : ` at ${lineColumn(text, position)}`;
    throw new JsonError(`not valid JSON${where}`, position, 'syntax', detail);
  }
}
