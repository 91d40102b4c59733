// The text input of `tallow test` (src/tester.ts): syslog-style lines as the journal entries
// they stand for, and the times `--since` accepts.
import type { JournalEntry } from './journal';
import { UsageError } from './options';

const SSHD_IDENTS = new Set(['sshd', 'sshd-session', 'sshd-auth']);

/** `--since` values: absolute dates (local time), @epoch, today/yesterday/now, relative. */
export function parseWhen(text: string, now: number): number {
  const t = text.trim();
  const bad = (): never => {
    throw new UsageError(`--since: cannot read ${JSON.stringify(text)} as a time (e.g. '2025-01-31 08:00', 'yesterday', '-2h', '30 min ago', '@1738300000')`);
  };
  if (t === 'now') return now;
  if (t === 'today' || t === 'yesterday') {
    const d = new Date(now);
    d.setHours(0, 0, 0, 0);
    if (t === 'yesterday') d.setDate(d.getDate() - 1);
    return d.getTime();
  }
  let m = /^@(\d+(?:\.\d+)?)$/.exec(t);
  if (m) return Math.round(Number(m[1]) * 1000);
  m = /^(?:-\s*(\d+)\s*([a-z]+)|(\d+)\s*([a-z]+)\s+ago)$/.exec(t);
  if (m) {
    const n = Number(m[1] ?? m[3]);
    const unit = m[2] ?? m[4];
    const units: [RegExp, number][] = [
      [/^(?:s|sec|secs|second|seconds)$/, 1e3],
      [/^(?:m|min|mins|minute|minutes)$/, 60e3],
      [/^(?:h|hr|hrs|hour|hours)$/, 3600e3],
      [/^(?:d|day|days)$/, 86400e3],
      [/^(?:w|week|weeks)$/, 7 * 86400e3],
    ];
    const u = units.find(([re]) => re.test(unit));
    if (!u) bad();
    return now - n * u![1];
  }
  m = /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2}))?)?$/.exec(t);
  if (m) {
    const d = new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4] ?? 0), Number(m[5] ?? 0), Number(m[6] ?? 0));
    if (Number.isNaN(d.getTime()) || d.getDate() !== Number(m[3])) bad();
    return d.getTime();
  }
  // Full ISO 8601 with a zone, e.g. 2025-01-31T08:00:00+01:00
  if (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})$/.test(t)) {
    const ms = Date.parse(t);
    if (!Number.isNaN(ms)) return ms;
  }
  return bad();
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
// journalctl -o short:     "Jan 31 08:00:01 host sshd[123]: message"
// journalctl -o short-iso: "2025-01-31T08:00:01+0100 host sshd[123]: message"
const SHORT = /^([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d{2}):(\d{2}):(\d{2}) \S+ ([^\s[\]:]+)(?:\[(\d+)\])?: (.*)$/s;
const SHORT_ISO = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2})) \S+ ([^\s[\]:]+)(?:\[(\d+)\])?: (.*)$/s;

/** One text line as the journal entry it stands for (and its time, when the line has one). */
export function lineToEntry(line: string, now: number, extra: Record<string, string> = {}): { entry: JournalEntry; ident: string | null } {
  let message = line;
  let ident: string | null = null;
  let pid: string | undefined;
  let when = now;
  let m = SHORT.exec(line);
  if (m && MONTHS.includes(m[1])) {
    const d = new Date(now);
    const t = new Date(d.getFullYear(), MONTHS.indexOf(m[1]), Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5]));
    // No year in the line: the most recent such date not in the future.
    if (t.getTime() > now + 86400e3) t.setFullYear(t.getFullYear() - 1);
    when = t.getTime();
    [ident, pid, message] = [m[6], m[7], m[8]];
  } else if ((m = SHORT_ISO.exec(line))) {
    const iso = m[1].replace(/([+-]\d{2})(\d{2})$/, '$1:$2');
    const ms = Date.parse(iso);
    if (!Number.isNaN(ms)) when = ms;
    [ident, pid, message] = [m[2], m[3], m[4]];
  }
  const fields: Record<string, string> = { MESSAGE: message, _UID: '0' };
  if (ident === null || SSHD_IDENTS.has(ident)) {
    fields._EXE = '/usr/sbin/sshd';
    fields.SYSLOG_IDENTIFIER = ident ?? 'sshd';
  } else {
    fields.SYSLOG_IDENTIFIER = ident;
  }
  if (pid !== undefined) fields._PID = pid;
  Object.assign(fields, extra);
  return { entry: { cursor: '', realtime: when * 1000, fields }, ident };
}
