// A command line from tallow.conf as an argument vector, and the placeholders in it. There is no
// shell, ever: the value is split into words once, when the file is read (quotes group words),
// and each placeholder is then replaced inside its own word, so whatever a value holds (spaces,
// `;`, `$(...)`, quotes) stays one argument.

/** What a ban or unban offers to a command, a webhook and a mail. */
export const PLACEHOLDERS = ['address', 'family', 'seconds', 'rule', 'pattern', 'score', 'count', 'reason', 'network', 'event', 'user', 'method', 'fingerprint'] as const;
export type Placeholder = (typeof PLACEHOLDERS)[number];
export type Values = Record<Placeholder, string>;

/** In batch mode one run covers many bans: only what they share may appear in its argv. */
export const BATCH_PLACEHOLDERS: readonly Placeholder[] = ['event'];

/** A login's own values (notify_command only): a ban has none. */
export const NOTIFY_PLACEHOLDERS: readonly Placeholder[] = ['user', 'method', 'fingerprint'];

/**
 * Split like a simple shell would, without any of its expansions: words separated by blanks;
 * '...' is literal; "..." is literal except \" and \\; a backslash outside quotes takes the next
 * character as it is. Returns the words, or an error message.
 */
export function splitWords(text: string): string[] | string {
  const words: string[] = [];
  let word = '';
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === ' ' || c === '\t') {
      if (inWord) words.push(word);
      word = '';
      inWord = false;
      continue;
    }
    inWord = true;
    if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) return `unclosed ' in ${text}`;
      word += text.slice(i + 1, end);
      i = end;
    } else if (c === '"') {
      let j = i + 1;
      for (; j < text.length && text[j] !== '"'; j++) {
        if (text[j] === '\\' && (text[j + 1] === '"' || text[j + 1] === '\\')) j++;
        word += text[j];
      }
      if (j >= text.length) return `unclosed " in ${text}`;
      i = j;
    } else if (c === '\\') {
      if (i + 1 >= text.length) return `a lone \\ at the end of ${text}`;
      word += text[++i];
    } else {
      word += c;
    }
  }
  if (inWord) words.push(word);
  return words;
}

const TOKEN = /\{([A-Za-z_]+)\}|%s/g;

/** The placeholders a word uses (`%s` is `address`), or an error naming an unknown one. */
export function placeholdersIn(word: string): Placeholder[] | string {
  const out: Placeholder[] = [];
  for (const m of word.matchAll(TOKEN)) {
    const name = m[1] ?? 'address';
    if (!(PLACEHOLDERS as readonly string[]).includes(name)) return `unknown placeholder {${name}} (known: ${PLACEHOLDERS.map((p) => `{${p}}`).join(' ')} and %s)`;
    out.push(name as Placeholder);
  }
  return out;
}

/**
 * A command for tallow.conf: words, the program an absolute path, every placeholder known (and,
 * in batch mode, shared by the whole batch). Returns the argv or an error message.
 */
export function parseCommand(text: string, batch: boolean, notify = false): string[] | string {
  const argv = splitWords(text);
  if (typeof argv === 'string') return argv;
  if (argv.length === 0) return 'expected a program and its arguments';
  if (!argv[0].startsWith('/')) return `the program must be an absolute path (no shell, no PATH search), got '${argv[0]}'`;
  if (placeholdersIn(argv[0]).length) return 'the program itself cannot be a placeholder';
  for (const w of argv) {
    const used = placeholdersIn(w);
    if (typeof used === 'string') return used;
    const login = notify ? undefined : used.find((p) => NOTIFY_PLACEHOLDERS.includes(p));
    if (login) return `{${login}} is a login's (notify_command); a ban has none`;
    const bad = batch ? used.find((p) => !BATCH_PLACEHOLDERS.includes(p)) : undefined;
    if (bad) return `{${bad}} differs from ban to ban: with batch= the addresses come on standard input, one per line`;
  }
  return argv;
}

/** Each word with its placeholders filled: one word in, one argument out. */
export function expand(argv: readonly string[], v: Values): string[] {
  return argv.map((w) => w.replace(TOKEN, (_m, name: string | undefined) => v[(name ?? 'address') as Placeholder] ?? ''));
}

/** The same values for the program's environment: TALLOW_ADDRESS, TALLOW_FAMILY... */
export function environment(v: Partial<Values>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, value] of Object.entries(v)) if (value !== undefined) env[`TALLOW_${k.toUpperCase()}`] = value;
  return env;
}
