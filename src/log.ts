// The daemon's own log. Under journald (stdout/stderr connected to the journal) every line is sent
// as a structured entry, so `journalctl -t tallow TALLOW_ACTION=ban` lists bans, and the lines of
// each kind carry a fixed MESSAGE_ID (`journalctl MESSAGE_ID=...`, listed in tallow(8)); elsewhere
// plain lines go to stdout (info, debug) and stderr (warnings, errors), or, when both are one file
// (`tallow >>/var/log/tallow.log 2>&1`), to that file by name, reopened on SIGUSR2 (logrotate).
import * as fs from 'node:fs';
import { getSystemErrorName } from 'node:util';
import { addon } from './addon';
import * as systemd from './systemd';

/**
 * MESSAGE_ID of each kind of line: made once with `systemd-id128 new`, never to change (scripts
 * and journal queries rely on them). Documented in tallow(8), section JOURNAL.
 */
export const MESSAGE_IDS = {
  start: 'dfe0619ef4df4313a0a2fd5dce7ccfe6',
  stop: 'b36e9caf902c4f8fb704bcf31bb9985a',
  reload: '98d3ae80dca74ac78d27a2f367a208e7',
  /** tallow.conf or the patterns refused: at start (the daemon exits 78) or on reload (the old ones run on) */
  config_error: 'f93036df0c8d484a84f461fb38469fee',
  ban: '4d9b4e584d9743088b02efa06bd4575a',
  unban: 'd6337573e8f7470b8b0836a5e818bcd6',
  notify: 'a735775e5d06417db39029f936da4f2b',
  /** start-up failed for another reason than the configuration (no usable firewall...) */
  start_failed: '1bb2a9eac9fd445c8d562f5da0b9074b',
} as const;

export type MessageKind = keyof typeof MESSAGE_IDS;

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
  /** Plain lines to this file (appended), reopened by reopen(); default: the file stdout and stderr both are, if any. */
  file?: string;
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
  /** The log file by name, or null (the journal, stdout/stderr, or a test's writer). */
  readonly file: string | null;
  private fd: number | null = null;
  /** The file is the one stdout and stderr were opened on (`>>FILE 2>&1`): reopen() moves them too. */
  private readonly onStdio: boolean;

  constructor(opts: LogOptions = {}) {
    this.verbose = opts.verbose ?? false;
    this.toJournal = opts.journal ?? safeUnderJournal();
    this.timestamps = opts.timestamps ?? true;
    this.file = opts.file ?? (this.toJournal || opts.write ? null : stdoutFile());
    this.onStdio = !opts.file && this.file !== null;
    if (opts.file) this.fd = fs.openSync(opts.file, 'a', 0o640);
    this.write = opts.write ?? ((level, line) => (this.fd !== null ? this.writeFile(line) : plainWrite(level, line)));
  }

  get journal(): boolean {
    return this.toJournal;
  }

  /**
   * SIGUSR2: open the log file by its name again (logrotate renamed it): the next line lands in a
   * new file. Returns what happened, for a log line; never throws (the old file is kept on error).
   */
  reopen(): string {
    if (this.file === null) return 'no log file to reopen (logging to the journal or a terminal)';
    let fd: number;
    try {
      fd = fs.openSync(this.file, 'a', 0o640);
    } catch (e) {
      return `cannot reopen ${this.file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; still writing to the file open before`;
    }
    if (this.onStdio) {
      // stdout and stderr onto the new file: what the process writes there itself (a crash's
      // trace, node's warnings, a child's inherited output) follows, and the rotated file is let go.
      const err = addon().dupOnto(fd, 1) || addon().dupOnto(fd, 2);
      if (err === 0) {
        fs.closeSync(fd);
        // An earlier reopen whose dup2 failed left the log on a file of its own: back to 1 and 2.
        if (this.fd !== null) fs.closeSync(this.fd);
        this.fd = null;
        return `log file reopened: ${this.file} (stdout and stderr too)`;
      }
      // Only the log's own lines move then; say so.
      const old = this.fd;
      this.fd = fd;
      if (old !== null) fs.closeSync(old);
      return `log file reopened: ${this.file}; stdout and stderr stay on the file open before (dup2: ${getSystemErrorName(-err)})`;
    }
    const old = this.fd;
    this.fd = fd;
    if (old !== null) fs.closeSync(old);
    return `log file reopened: ${this.file}`;
  }

  private writeFile(line: string): void {
    try {
      fs.writeSync(this.fd!, line + '\n');
    } catch {
      // A full disk must not stop the daemon; the line is lost, as it would be on stdout.
    }
  }

  /** `kind` tags the line with its MESSAGE_ID in the journal (start, stop, reload, config_error...). */
  info(msg: string, fields?: Record<string, string>, kind?: MessageKind): void {
    this.emit('info', msg, fields, kind ? { MESSAGE_ID: MESSAGE_IDS[kind] } : undefined);
  }
  warn(msg: string, fields?: Record<string, string>, kind?: MessageKind): void {
    this.emit('warn', msg, fields, kind ? { MESSAGE_ID: MESSAGE_IDS[kind] } : undefined);
  }
  error(msg: string, fields?: Record<string, string>, kind?: MessageKind): void {
    this.emit('error', msg, fields, kind ? { MESSAGE_ID: MESSAGE_IDS[kind] } : undefined);
  }
  debug(msg: string, fields?: Record<string, string>): void {
    if (this.verbose) this.emit('debug', msg, fields);
  }

  /** A ban or unban: message `ACTION key=value...`, journal field TALLOW_ACTION=ACTION. */
  action(action: 'ban' | 'unban' | 'notify', fields: Record<string, string>): void {
    this.emit('info', action, fields, { TALLOW_ACTION: action, MESSAGE_ID: MESSAGE_IDS[action] });
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

/**
 * The file stdout and stderr both write to (`>>FILE 2>&1`), by the name it was opened with, or
 * null: a terminal, a pipe, two different files, a file already deleted.
 */
function stdoutFile(): string | null {
  try {
    const out = fs.fstatSync(1);
    const err = fs.fstatSync(2);
    if (!out.isFile() || out.dev !== err.dev || out.ino !== err.ino) return null;
    const name = fs.readlinkSync('/proc/self/fd/1');
    if (!name.startsWith('/') || name.endsWith(' (deleted)')) return null;
    // The name must still be this file: reopen() appends to whatever bears it later.
    const now = fs.statSync(name);
    return now.dev === out.dev && now.ino === out.ino ? name : null;
  } catch {
    return null;
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
