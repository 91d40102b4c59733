// libsystemd services other than reading, from the addon (native/systemd.cc).
import { addon } from './addon';

/** sd_notify(0, state), e.g. 'READY=1\nSTATUS=...'. Returns false when not under systemd
 *  (no NOTIFY_SOCKET); throws when the notification cannot be sent. */
export function notify(state: string): boolean {
  return addon().notify(state);
}

/** sd_watchdog_enabled(): the watchdog interval in microseconds, or 0. Throws on a malformed WATCHDOG_USEC. */
export function watchdogUsec(): number {
  return addon().watchdogUsec();
}

const FIELD_NAME = /^[A-Z_][A-Z0-9_]*$/;

/** sd_journal_sendv(): one structured entry, fields as FIELD -> value (MESSAGE, PRIORITY, TALLOW_*...). */
export function journalSend(fields: Record<string, string>): void {
  const items: string[] = [];
  for (const [name, value] of Object.entries(fields)) {
    if (!FIELD_NAME.test(name) || name.startsWith('__') || name.length > 64) {
      throw new Error(`journalSend: field "${name}" must be upper-case letters, digits and underscores, not starting with a digit or "__"`);
    }
    if (typeof value !== 'string') throw new Error(`journalSend: field ${name} must be a string`);
    items.push(`${name}=${value}`);
  }
  if (items.length === 0) throw new Error('journalSend: no fields');
  addon().journalSend(items);
}

/** True when stdout/stderr is connected to the journal (JOURNAL_STREAM matches). */
export function underJournal(): boolean {
  return addon().underJournal();
}
