// The daemon's own log. Under journald (stdout/stderr connected to the journal) every line is sent
// as a structured entry, so `journalctl -t tallow TALLOW_ACTION=ban` lists bans; elsewhere plain
// lines go to stdout (info, debug) and stderr (warnings, errors).
import * as systemd from './systemd';

/** What every module that logs needs (the daemon's Log, or a test's collector). */
export interface Logger {
  info(msg: string, fields?: Record<string, string>): void;
  warn(msg: string, fields?: Record<string, string>): void;
  error(msg: string, fields?: Record<string, string>): void;
  debug(msg: string, fields?: Record<string, string>): void;
}

export type Level = 'error' | 'warn' | 'info' | 'debug';

/** syslog priorities, as journald expects them in PRIORITY= */
const PRIORITY: Record<Level, string> = { error: '3', warn: '4', info: '6', debug: '7' };

export interface LogOptions {
  verbose?: boolean;
  /** Force the destination; default: the journal when systemd.underJournal() says so. */
  journal?: boolean;
  /** Plain lines start with an ISO time stamp (default true; journald stamps its own entries). */
  timestamps?: boolean;
  /** Where plain lines go (tests). */
  write?: (level: Level, line: string) => void;
}

/** Field names from callers (`address`, `retry_in_ms`) as journal field names (`TALLOW_ADDRESS`). */
export function journalField(key: string): string {
  const k = key.toUpperCase().replace(/[^A-Z0-9_]/g, '_').replace(/^_+/, '');
  return k.startsWith('TALLOW_') ? k : `TALLOW_${k}`;
}

/** `key=value`, quoted when the value holds spaces, quotes or is empty, newlines escaped. */
export function formatFields(fields: Record<string, string> | undefined): string {
  if (!fields) return '';
  const parts: string[] = [];
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined) continue;
    const s = String(v);
    parts.push(`${k}=${/^[^\s"=\\]+$/.test(s) ? s : JSON.stringify(s)}`);
  }
  return parts.join(' ');
}

export class Log implements Logger {
  verbose: boolean;
  private readonly toJournal: boolean;
  private readonly timestamps: boolean;
  private readonly write: (level: Level, line: string) => void;

  constructor(opts: LogOptions = {}) {
    this.verbose = opts.verbose ?? false;
    this.toJournal = opts.journal ?? safeUnderJournal();
    this.timestamps = opts.timestamps ?? true;
    this.write = opts.write ?? plainWrite;
  }

  get journal(): boolean {
    return this.toJournal;
  }

  info(msg: string, fields?: Record<string, string>): void {
    this.emit('info', msg, fields);
  }
  warn(msg: string, fields?: Record<string, string>): void {
    this.emit('warn', msg, fields);
  }
  error(msg: string, fields?: Record<string, string>): void {
    this.emit('error', msg, fields);
  }
  debug(msg: string, fields?: Record<string, string>): void {
    if (this.verbose) this.emit('debug', msg, fields);
  }

  /** A ban or unban: message `ACTION key=value...`, journal field TALLOW_ACTION=ACTION. */
  action(action: 'ban' | 'unban' | 'notify', fields: Record<string, string>): void {
    this.emit('info', action, fields, { TALLOW_ACTION: action });
  }

  private emit(level: Level, msg: string, fields?: Record<string, string>, extra?: Record<string, string>): void {
    const kv = formatFields(fields);
    const text = kv ? `${msg} ${kv}` : msg;
    if (this.toJournal) {
      const entry: Record<string, string> = { MESSAGE: text, PRIORITY: PRIORITY[level], SYSLOG_IDENTIFIER: 'tallow' };
      for (const [k, v] of Object.entries(fields ?? {})) if (v !== undefined) entry[journalField(k)] = String(v);
      Object.assign(entry, extra);
      try {
        systemd.journalSend(entry);
        return;
      } catch {
        // journald gone or refusing: fall through to the plain line, which journald's stream may still take.
      }
    }
    const line = this.timestamps && !this.toJournal ? `${new Date().toISOString()} ${level}: ${text}` : `${level}: ${text}`;
    this.write(level, line);
  }
}

function safeUnderJournal(): boolean {
  try {
    return systemd.underJournal();
  } catch {
    return false;
  }
}

// EPIPE on a closed stdout must not kill the daemon.
let guarded = false;
function plainWrite(level: Level, line: string): void {
  if (!guarded) {
    guarded = true;
    process.stdout.on('error', () => {});
    process.stderr.on('error', () => {});
  }
  (level === 'error' || level === 'warn' ? process.stderr : process.stdout).write(line + '\n');
}
