// `tallow test`: run the patterns over log lines (a file, stdin) or the journal, and show what the
// daemon would have done: matches per pattern with their addresses, the lines nothing matched, and
// the bans each rule's policy would have made (threshold, findtime on the times read from the
// input, bantime, ports, ban prefix). `--rule NAME` shows that rule alone. Nothing here touches
// the firewall; files and stdin need no privileges. The report is written by tester-report.ts.
//
// Exit status: 0 something matched; 1 nothing matched; 64 bad usage; 66 the input could not be
// read (EX_NOINPUT); 78 tallow.conf or a patterns file is wrong (EX_CONFIG).
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as readline from 'node:readline';
import type { Readable } from 'node:stream';
import { ConfigError, DEFAULT_CONFIG_FILE, loadConfig, type Config } from './config';
import { PatternError, loadPatternFiles, parsePatternFile, shippedPatternsDir, journalMatches, neededFields, type PatternFile } from './patterns';
import { command } from './commands';
import { EX_CONFIG, EX_NOINPUT, EX_USAGE } from './exit';
import { helpText, parseCommand, synopsis, type ParsedCommand, UsageError } from './options';
import type { Matcher } from './matcher';
import type { Decision } from './tracker';
import { Allowlist } from './allowlist';
import { Ledger } from './ledger';
import { makeEngine } from './engine';
import type { Rule } from './rule';
import { Scoring } from './scoring';
import { overlaps } from './target';
import { report, type BanRow, type PatternStats, type RuleStats } from './tester-report';
import { lineToEntry, parseWhen } from './tester-input';
import type { Journal as JournalT, JournalEntry, MatchGroup } from './journal';

export const EXIT_MATCHED = 0;
export const EXIT_NO_MATCH = 1;
export const EXIT_USAGE = EX_USAGE;
export const EXIT_NOINPUT = EX_NOINPUT;
export const EXIT_CONFIG = EX_CONFIG;

export interface TesterIO {
  out(text: string): void;
  err(text: string): void;
  stdin?: Readable;
  /** ms since epoch, for lines that carry no time of their own */
  now?: () => number;
  /** ms between progress lines on stderr */
  progressMs?: number;
}

const USAGE = `usage: ${synopsis(command('test')!, true)}\n(see tallow test --help)\n`;


interface Options {
  input: string | null; // file, '-' or null (stdin unless --journal)
  journal: boolean;
  since?: number; // ms since epoch
  unit?: string;
  journalDir?: string;
  unmatched: boolean;
  config?: string;
  patterns?: string;
  rule?: string;
  fields: Record<string, string>;
}

function parseArgs(p: ParsedCommand, now: number): Options {
  const v = p.values;
  const o: Options = { input: p.positionals[0] ?? null, journal: v.journal === true, unmatched: v.unmatched === true, fields: {} };
  if (typeof v.since === 'string') {
    o.since = parseWhen(v.since, now);
    o.journal = true;
  }
  if (typeof v.unit === 'string') {
    const u = v.unit;
    if (!/^[A-Za-z0-9:_.@\\-]+$/.test(u)) throw new UsageError(`--unit: ${JSON.stringify(u)} is not a unit name`);
    o.unit = u.includes('.') ? u : `${u}.service`;
    o.journal = true;
  }
  if (typeof v['journal-dir'] === 'string') {
    o.journalDir = v['journal-dir'];
    o.journal = true;
  }
  if (typeof v.config === 'string') o.config = v.config;
  if (typeof v.patterns === 'string') o.patterns = v.patterns;
  if (typeof v.rule === 'string') o.rule = v.rule;
  for (const f of Array.isArray(v.field) ? v.field : []) {
    const m = /^([A-Z_][A-Z0-9_]*)=(.*)$/s.exec(f);
    if (!m) throw new UsageError(`--field: expected NAME=VALUE with an upper-case journal field name, got ${JSON.stringify(f)}`);
    o.fields[m[1]] = m[2];
  }
  if (o.journal && o.input !== null) throw new UsageError('give either a FILE or --journal, not both');
  if (!o.journal && Object.keys(o.fields).length === 0) {
    /* text input with sshd's fields */
  }
  if (o.journal && Object.keys(o.fields).length > 0) throw new UsageError('--field applies to text input only (the journal has its own fields)');
  return o;
}

function loadPatterns(o: Options, config: Config): PatternFile[] {
  if (o.patterns === undefined) return loadPatternFiles(shippedPatternsDir(), config.patternsDir);
  let st: fs.Stats;
  try {
    st = fs.statSync(o.patterns);
  } catch (e) {
    throw new PatternError(`${o.patterns}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  if (st.isDirectory()) return loadPatternFiles(shippedPatternsDir(), o.patterns);
  let text: string;
  try {
    text = fs.readFileSync(o.patterns, 'utf8');
  } catch (e) {
    throw new PatternError(`${o.patterns}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  return parsePatternFile(text, path.basename(o.patterns), o.patterns);
}

export class Run {
  readonly matcher: Matcher;
  readonly scoring: Scoring;
  readonly allow: Allowlist;
  /** The rules of these files, enabled or not; with --rule, `only` is one of them. */
  readonly rules: Rule[];
  readonly only: Rule | null;
  /** What the daemon would hold banned, so a match during a ban is counted as the daemon would. */
  readonly ledger = new Ledger({ emit: () => {} });
  readonly perPattern = new Map<string, PatternStats>();
  readonly perRule = new Map<string, RuleStats>();
  readonly bans = new Map<string, BanRow>();
  readonly unmatched: string[] = [];
  total = 0;
  matched = 0;
  /** with --rule: lines another rule matched (not this rule's, as in the daemon: the first match wins) */
  otherRules = 0;
  badAddress = 0;
  allowlisted = new Set<string>();

  /** `only`: --rule NAME. */
  constructor(readonly files: PatternFile[], readonly config: Config, readonly keepUnmatched: boolean, only?: string) {
    // The same engine the daemon builds from these files and settings.
    const engine = makeEngine(config, files);
    this.matcher = engine.matcher;
    this.allow = engine.allowlist;
    this.rules = engine.rules;
    this.only = only === undefined ? null : (this.rules.find((r) => r.name === only) ?? null);
    if (only !== undefined && !this.only) throw new UsageError(`--rule: no rule named ${JSON.stringify(only)} (rules: ${this.rules.map((r) => r.name).join(', ')})`);
    const allow = this.allow;
    this.scoring = new Scoring(
      {
        threshold: config.threshold,
        expires: config.expires,
        maxRecords: config.maxRecords,
        isAllowed: (a, f) => allow.has(a, f),
        coversAllowed: (net) => allow.has(net.base, net.family) || allow.entries.some((e) => overlaps(net, { base: e.address, family: e.family, prefix: e.prefix })),
        bannedUntil: (t, scope) => this.ledger.expiryOf(t, scope),
      },
      this.rules,
    );
    for (const f of files) for (const p of f.patterns) this.perPattern.set(p.name, { pattern: p, lines: 0, addresses: new Map() });
    for (const r of this.rules) this.perRule.set(r.name, { rule: r, lines: 0 });
  }

  feed(entry: JournalEntry, where: string, shown: string): void {
    this.total++;
    const invalidBefore = this.matcher.metrics.invalidAddresses;
    const m = this.matcher.match(entry);
    if (!m) {
      if (this.matcher.metrics.invalidAddresses !== invalidBefore) this.badAddress++;
      if (this.keepUnmatched) this.unmatched.push(`${where}: ${shown}`);
      return;
    }
    const { rule } = m;
    if (this.only && rule.name !== this.only.name) {
      this.otherRules++;
      return;
    }
    this.matched++;
    const ps = this.perPattern.get(m.pattern.name)!;
    ps.lines++;
    ps.addresses.set(m.address, (ps.addresses.get(m.address) ?? 0) + 1);
    const rs = this.perRule.get(rule.name) ?? { rule, lines: 0 };
    this.perRule.set(rule.name, rs);
    rs.lines++;
    if (this.allow.has(m.address, m.family)) this.allowlisted.add(m.address);
    // A notify rule's match (a login) is reported, never scored: as in the daemon.
    if (rule.action === 'notify') return;
    // The line's own time: findtime windows and ban ends as they would have been.
    const now = Math.floor(entry.realtime / 1000);
    this.scoring.prune(now);
    this.ledger.expire(now);
    for (const d of this.scoring.observe(m, rule, now)) this.record(d, where, now);
  }

  private record(d: Decision, where: string, now: number): void {
    if (d.action !== 'ban') return;
    this.ledger.ban({ ...d, origin: 'rule' }, now);
    const key = `${d.address}\n${d.reason}\n${d.pattern}\n${d.seconds}\n${d.scope}`;
    const row = this.bans.get(key);
    if (row) row.times++;
    else this.bans.set(key, { address: d.address, rule: d.rule, scope: d.scope, seconds: d.seconds, reason: d.reason, pattern: d.pattern, score: d.score, count: d.count, times: 1, first: where });
  }
}

/** Printable form of a line: control characters (attacker text) and tabs escaped, so they show. */
function printable(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x09\x0b-\x1f\x7f]/g, (ch) => `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`).replace(/\n/g, '\\n');
}

class Progress {
  private last = Date.now();
  private shown = false;
  constructor(private readonly io: TesterIO, private readonly what: string, private readonly everyMs: number) {}
  tick(n: number): void {
    const t = Date.now();
    if (t - this.last < this.everyMs) return;
    this.last = t;
    this.shown = true;
    this.io.err(`tallow test: ${n} ${this.what} read...\n`);
  }
  done(n: number): void {
    if (this.shown) this.io.err(`tallow test: ${n} ${this.what} read, done.\n`);
  }
}

async function readText(run: Run, o: Options, io: TesterIO): Promise<string> {
  const now = io.now ?? Date.now;
  let stream: Readable;
  let name: string;
  if (o.input === null || o.input === '-') {
    stream = io.stdin ?? process.stdin;
    name = 'stdin';
    if (stream === process.stdin && process.stdin.isTTY) io.err('tallow test: reading log lines from stdin (end with Ctrl-D)\n');
  } else {
    // Open first, so a missing file is one clear message and exit 66, not a stream error later.
    let fd: number;
    try {
      fd = fs.openSync(o.input, 'r');
      if (fs.fstatSync(fd).isDirectory()) {
        fs.closeSync(fd);
        throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
      }
    } catch (e) {
      throw new InputError(`${o.input}: cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    stream = fs.createReadStream('', { fd });
    name = o.input;
  }
  const progress = new Progress(io, 'lines', io.progressMs ?? 2000);
  const rl = readline.createInterface({ input: stream, crlfDelay: Infinity });
  let n = 0;
  try {
    for await (const raw of rl) {
      n++;
      const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
      if (line.trim() === '') {
        run.total++; // counted, never matched, not worth listing
        continue;
      }
      const { entry } = lineToEntry(line, now(), o.fields);
      run.feed(entry, `line ${n}`, printable(line));
      progress.tick(n);
    }
  } catch (e) {
    throw new InputError(`${name}: read error: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  progress.done(n);
  return `line${n === 1 ? '' : 's'} from ${name}`;
}

class InputError extends Error {}

async function readJournal(run: Run, o: Options, io: TesterIO): Promise<string> {
  // Loaded here so file/stdin testing works even where the addon was not built.
  let journalModule: typeof import('./journal');
  try {
    journalModule = await import('./journal');
  } catch (e) {
    throw new InputError(`journal: cannot load the journal reader: ${(e as Error).message}`);
  }
  const { Journal } = journalModule;
  let matches: MatchGroup[] = journalMatches(run.files);
  if (o.unit) matches = matches.length ? matches.map((g) => [...g, `_SYSTEMD_UNIT=${o.unit}`]) : [[`_SYSTEMD_UNIT=${o.unit}`]];
  const fields = [...new Set([...neededFields(run.files), 'SYSLOG_IDENTIFIER', '_PID'])];
  let j: JournalT;
  try {
    j = Journal.open({ directory: o.journalDir, fields, matches });
    j.seek(o.since !== undefined ? { at: 'realtime', usec: o.since * 1000 } : { at: 'head' });
  } catch (e) {
    throw new InputError(`journal${o.journalDir ? ` in ${o.journalDir}` : ''}: ${(e as Error).message}`);
  }
  const progress = new Progress(io, 'journal entries', io.progressMs ?? 2000);
  let n = 0;
  try {
    for (;;) {
      const batch = j.readBatch(4096);
      if (batch.length === 0) break;
      for (const e of batch) {
        n++;
        const when = new Date(Math.floor(e.realtime / 1000)).toISOString();
        const ident = e.fields.SYSLOG_IDENTIFIER ?? '?';
        const pid = e.fields._PID ? `[${e.fields._PID}]` : '';
        run.feed(e, when, `${ident}${pid}: ${printable(e.fields.MESSAGE ?? '')}`);
      }
      progress.tick(n);
      // Let Ctrl-C and stderr writes through on very long reads.
      await new Promise<void>((r) => setImmediate(r));
    }
  } catch (e) {
    throw new InputError(`journal: ${(e as Error).message}`);
  } finally {
    j.close();
  }
  progress.done(n);
  const where = o.journalDir ? `the journal in ${o.journalDir}` : 'the journal';
  return `entr${n === 1 ? 'y' : 'ies'} from ${where}${o.unit ? ` (unit ${o.unit})` : ''}${o.since !== undefined ? ` since ${new Date(o.since).toISOString()}` : ''}`;
}

/** Testable core of testMain: all output through `io`. */
export async function testRun(args: string[], io: TesterIO): Promise<number> {
  const spec = command('test')!;
  let o: Options;
  try {
    const p = parseCommand(spec, args);
    if (p.help) {
      io.out(helpText(spec));
      return EXIT_MATCHED;
    }
    o = parseArgs(p, (io.now ?? Date.now)());
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.err(`tallow test: ${e.message}\n${USAGE}`);
    return EXIT_USAGE;
  }
  let run: Run;
  try {
    const config = o.config !== undefined ? loadConfig(o.config, true) : loadConfig(DEFAULT_CONFIG_FILE, false);
    const files = loadPatterns(o, config);
    if (files.every((f) => f.patterns.length === 0)) throw new PatternError(`${o.patterns ?? 'patterns'}: no patterns to test`);
    run = new Run(files, config, o.unmatched, o.rule);
  } catch (e) {
    if (e instanceof UsageError) {
      io.err(`tallow test: ${e.message}\n`);
      return EXIT_USAGE;
    }
    if (e instanceof ConfigError || e instanceof PatternError) {
      io.err(`tallow test: ${e.message}\n`);
      return EXIT_CONFIG;
    }
    io.err(`tallow test: ${(e as Error).message}\n`);
    return EXIT_CONFIG;
  }
  let source: string;
  try {
    source = o.journal ? await readJournal(run, o, io) : await readText(run, o, io);
  } catch (e) {
    io.err(`tallow test: ${(e as Error).message}\n`);
    return EXIT_NOINPUT;
  }
  report(run, source, (t) => io.out(t));
  return run.matched > 0 ? EXIT_MATCHED : EXIT_NO_MATCH;
}

export function testMain(args: string[]): Promise<number> {
  return testRun(args, {
    out: (t) => process.stdout.write(t),
    err: (t) => process.stderr.write(t),
  });
}
