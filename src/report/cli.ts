// `tallow report [--since WHEN] [--until WHEN] [--format text|json|html] [--top N]`: the report
// of a period (default: the last 24 hours) read straight from the history store, whether the
// daemon runs or not (the SQLite file read-only beside the daemon's writes: WAL allows it; or
// PostgreSQL). Exit status as `tallow history`: 0 done, 1 no history or unreadable, 64 bad usage,
// 78 tallow.conf.
import * as fs from 'node:fs';
import { ConfigError, DEFAULT_CONFIG_FILE, loadConfig, type Config } from '../config';
import { EXIT_CONFIG, EXIT_OK, EXIT_REFUSED, EXIT_USAGE, type CtlIO } from '../ctl';
import { historyStore } from '../history';
import { parseSince } from '../history-cli';
import { SqliteStore } from '../history/sqlite';
import { errText } from '../limits';
import { command } from '../commands';
import { helpText, parseCommand, synopsis, UsageError } from '../options';
import type { MailAction } from '../actions/settings';
import { buildReport } from './index';
import { mailReport } from './mail';

export const REPORT_USAGE = synopsis(command('report')!);

const FORMATS = ['text', 'json', 'html'] as const;
type Format = (typeof FORMATS)[number];

interface Parsed {
  since: number;
  until: number;
  format: Format;
  top: number;
  config?: string;
  /** `--mail NAME`: send it through that mail action instead of printing it */
  mail?: string;
}

/** `6h` (ago), `2026-11-20`, `2026-11-20T10:00` (local time) -> ms; the error names the option. */
function when(option: string, text: string, now: number): number {
  try {
    return parseSince(text, now);
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/^--since/, option));
  }
}

function parse(args: string[], now: number): Parsed {
  const v = parseCommand(command('report')!, args).values;
  const since = typeof v.since === 'string' ? v.since : undefined;
  const until = typeof v.until === 'string' ? v.until : undefined;
  const p: Parsed = { since: 0, until: now, format: 'text', top: 10 };
  if (typeof v.format === 'string') {
    if (!(FORMATS as readonly string[]).includes(v.format)) throw new UsageError(`--format must be text, json or html, not ${JSON.stringify(v.format).slice(0, 40)}`);
    p.format = v.format as Format;
  }
  if (typeof v.top === 'string') {
    if (!/^\d{1,3}$/.test(v.top) || Number(v.top) < 1 || Number(v.top) > 100) throw new UsageError(`--top must be a whole number from 1 to 100, not ${JSON.stringify(v.top).slice(0, 40)}`);
    p.top = Number(v.top);
  }
  if (typeof v.config === 'string') p.config = v.config;
  if (typeof v.mail === 'string') p.mail = v.mail;
  p.until = until === undefined ? now : when('--until', until, now);
  p.since = since === undefined ? p.until - 86_400_000 : when('--since', since, now);
  if (p.since >= p.until) throw new UsageError(`the period is empty: --since ${new Date(p.since).toISOString()} is not before --until ${new Date(p.until).toISOString()}`);
  return p;
}

export async function reportRun(args: string[], io: CtlIO, now = Date.now()): Promise<number> {
  const spec = command('report')!;
  try {
    if (parseCommand(spec, args).help) {
      io.out(helpText(spec));
      return EXIT_OK;
    }
  } catch {
    /* said below */
  }
  let p: Parsed;
  try {
    p = parse(args, now);
  } catch (e) {
    io.err(`tallow report: ${(e as Error).message}\nusage: ${REPORT_USAGE}\n`);
    return EXIT_USAGE;
  }
  let config: Config;
  try {
    config = loadConfig(p.config ?? DEFAULT_CONFIG_FILE, p.config !== undefined);
  } catch (e) {
    io.err(`tallow: ${(e as Error).message}\n`);
    return e instanceof ConfigError ? EXIT_CONFIG : EXIT_USAGE;
  }
  let mailTo: MailAction | undefined;
  if (p.mail !== undefined) {
    const mails = (config.actionDefs ?? []).filter((a): a is MailAction => a.kind === 'mail');
    mailTo = mails.find((a) => a.name === p.mail);
    if (!mailTo) {
      const known = mails.map((a) => a.name).join(', ') || 'none (action.NAME.mail_to=... in tallow.conf)';
      io.err(`tallow report: --mail ${JSON.stringify(p.mail).slice(0, 40)}: no mail action of that name in ${config.file ?? 'tallow.conf'} (mail actions: ${known})\n`);
      return EXIT_USAGE;
    }
  }
  const quiet = { info() {}, warn() {}, debug() {}, error() {} };
  const store = historyStore(config, quiet, true);
  if (!store) {
    io.err('tallow report: the history is off (history=off in tallow.conf): there is nothing to report from\n');
    return EXIT_REFUSED;
  }
  if (store instanceof SqliteStore && !fs.existsSync(store.file)) {
    io.err(`tallow report: no history yet (${store.file} does not exist; the daemon creates it)\n`);
    return EXIT_REFUSED;
  }
  try {
    const r = await buildReport(store, p.since, p.until, { now, top: p.top });
    if (mailTo) {
      const why = await mailReport(mailTo, r, now);
      if (why) {
        io.err(`tallow report: mail to ${mailTo.to.join(', ')} (action.${mailTo.name}) not sent: ${why}\n`);
        return EXIT_REFUSED;
      }
      io.out(`report of ${new Date(p.since).toISOString()} to ${new Date(p.until).toISOString()} mailed to ${mailTo.to.join(', ')} (action.${mailTo.name})\n`);
      return EXIT_OK;
    }
    io.out(p.format === 'json' ? r.json : p.format === 'html' ? r.html : r.text);
    return EXIT_OK;
  } catch (e) {
    io.err(`tallow report: cannot read the history (${store.where}): ${errText(e)}\n`);
    return EXIT_REFUSED;
  } finally {
    await store.close().catch(() => {});
  }
}

export function reportMain(args: string[]): Promise<number> {
  return reportRun(args, { out: (t) => process.stdout.write(t), err: (t) => process.stderr.write(t) });
}
