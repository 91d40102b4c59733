// The one option parser of the daemon and every command: node:util parseArgs (strict, short
// aliases, `--name value` and `--name=value` alike), driven by the table in commands.ts, which
// also writes each `--help`. Errors are UsageError with a short message naming the option.
import { parseArgs } from 'node:util';
import { EXIT_STATUSES } from './exit';

export class UsageError extends Error {}

export interface OptionSpec {
  /** `config` for --config */
  long: string;
  /** `c` for -c */
  short?: string;
  /** the value's name in help (`FILE`); absent: a flag that takes no value */
  value?: string;
  /** may be given more than once; the values are collected in order */
  multiple?: boolean;
  help: string;
}

export interface CommandSpec {
  /** '' is the daemon */
  name: string;
  /** the positional arguments as the synopsis shows them: `ADDRESS|NETWORK`, `[NAME]` */
  args?: string;
  /** how many positional arguments: at least, at most */
  positionals: [number, number];
  /** what it does, for `tallow --help` (may wrap over lines) */
  summary: string;
  options: OptionSpec[];
  /** options left out of the synopsis line in `tallow --help` (shared ones: --socket, --config) */
  quiet?: string[];
  /** more text after the options in `tallow CMD --help` */
  notes?: string;
  /** the exit statuses it uses (EXIT_STATUSES) */
  exits: number[];
  /** what some of them mean for this command, when not what EXIT_STATUSES says */
  exitText?: Record<number, string>;
}

export type Values = Record<string, string | boolean | string[] | undefined>;

export interface ParsedCommand {
  values: Values;
  positionals: string[];
  /** --help was given: nothing else was checked */
  help: boolean;
}

const show = (s: string) => JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}...` : s);

/** The option named in one of parseArgs' messages: its long form. */
function named(spec: CommandSpec, message: string): OptionSpec | undefined {
  const m = /'([^']*)'/.exec(message);
  const text = m ? m[1] : '';
  const long = /--([a-z][a-z0-9-]*)/.exec(text)?.[1];
  const short = /^-([A-Za-z])\b/.exec(text)?.[1];
  return spec.options.find((o) => o.long === long) ?? spec.options.find((o) => o.short !== undefined && o.short === short);
}

/** Parse `argv` (the arguments after the command's name) by the command's table. Throws UsageError. */
export function parseCommand(spec: CommandSpec, argv: string[]): ParsedCommand {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const o of spec.options) options[o.long] = { type: o.value ? 'string' : 'boolean', ...(o.short ? { short: o.short } : {}), ...(o.multiple ? { multiple: true } : {}) };
  let parsed: { values: Values; positionals: string[] };
  try {
    const r = parseArgs({ args: argv, options, strict: true, allowPositionals: true });
    parsed = { values: { ...r.values } as Values, positionals: r.positionals };
  } catch (e) {
    const err = e as { code?: string; message: string };
    // --help with a mistake beside it: the help is what was asked for.
    const dash = argv.indexOf('--');
    const before = dash < 0 ? argv : argv.slice(0, dash);
    if (before.includes('--help') || before.includes('-h')) return { values: { help: true }, positionals: [], help: true };
    const o = named(spec, err.message);
    if (err.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const m = /'([^']*)'/.exec(err.message);
      throw new UsageError(`unknown option ${m ? m[1] : err.message}`);
    }
    if (err.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE' && o) {
      if (/does not take an argument/.test(err.message)) throw new UsageError(`--${o.long} takes no value`);
      if (/ambiguous/.test(err.message)) throw new UsageError(`--${o.long} needs a value (${o.value}); one starting with "-" is written --${o.long}=-...`);
      throw new UsageError(`--${o.long} needs a value (${o.value})`);
    }
    throw new UsageError(err.message.split('\n')[0]);
  }
  const help = parsed.values.help === true;
  if (help) return { ...parsed, help };
  for (const o of spec.options) {
    const v = parsed.values[o.long];
    const vs = Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
    if (vs.some((x) => x === '')) throw new UsageError(`--${o.long} needs a value (${o.value})`);
  }
  const [min, max] = spec.positionals;
  const p = parsed.positionals;
  if (p.length > max) {
    if (max === 0 && spec.name === '') throw new UsageError(`unknown command ${show(p[0])}`);
    throw new UsageError(`unexpected argument ${show(p[max])}`);
  }
  if (p.length < min) throw new UsageError(`${spec.args ?? 'an argument'} is needed`);
  return { ...parsed, help };
}

/** `-c, --config FILE` */
export function optionText(o: OptionSpec): string {
  return `${o.short ? `-${o.short}, ` : '    '}--${o.long}${o.value ? ` ${o.value}` : ''}`;
}

/** The command's synopsis: `tallow ban ADDRESS|NETWORK [--time DURATION] [--rule RULE]`. */
export function synopsis(spec: CommandSpec, all = false): string {
  const opts = spec.options
    .filter((o) => o.long !== 'help' && (all || !spec.quiet?.includes(o.long)))
    .map((o) => `[--${o.long}${o.value ? ` ${o.value}` : ''}]${o.multiple ? '...' : ''}`);
  return ['tallow', ...(spec.name ? [spec.name] : []), ...(spec.args ? [spec.args] : []), ...opts].join(' ');
}

/** Words wrapped at `width`, each line after the first indented by `indent`. */
export function wrap(text: string, width: number, indent: string): string {
  const out: string[] = [];
  let line = '';
  for (const w of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + w.length > width) {
      out.push(line);
      line = indent + w;
    } else line = line ? `${line} ${w}` : w;
  }
  if (line) out.push(line);
  return out.join('\n');
}

/** Option lines: `  -c, --config FILE  help`, the help column aligned. */
export function optionLines(options: OptionSpec[]): string {
  const w = Math.max(...options.map((o) => optionText(o).length)) + 2;
  return options.map((o) => `  ${optionText(o).padEnd(w)}${wrap(o.help, 100 - w - 2, ' '.repeat(w + 2))}`).join('\n') + '\n';
}

export function exitLines(codes: number[], own: Record<number, string> = {}): string {
  const rows = EXIT_STATUSES.filter(([c]) => codes.includes(c)).map(([c, what]): [number, string] => [c, own[c] ?? what]);
  return rows.map(([c, what]) => `  ${String(c).padStart(2)}  ${wrap(what, 94, '      ')}`).join('\n') + '\n';
}

/** `tallow CMD --help`: synopsis, what it does, every option, notes, exit statuses. */
export function helpText(spec: CommandSpec): string {
  return (
    `${wrap(`usage: ${synopsis(spec, true)}`, 100, '         ')}\n` +
    `${wrap(spec.summary, 100, '')}\n\nOptions:\n${optionLines(spec.options)}` +
    (spec.notes ? `\n${spec.notes.trim().split('\n').map((para) => wrap(para, 100, '')).join('\n')}\n` : '') +
    `\nExit status:\n${exitLines(spec.exits, spec.exitText)}`
  );
}
