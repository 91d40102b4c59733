// The report as a mail: one multipart message (the text report as the plain part, the HTML report
// as the other) through a mail action's sendmail(8), as the digests go. Used by
// `tallow report --mail NAME` and by the daily timer (timer.ts), which runs that command.
import * as os from 'node:os';
import type { MailAction } from '../actions/settings';
import { buildMessage } from '../actions/message';
import { mailTransport } from '../actions/transport';
import { errText } from '../limits';
import type { Report } from './index';

/** `tallow report for host: 12 bans (2026-12-01 06:00 to 2026-12-02 06:00 UTC)` */
export function reportSubject(node: string, r: Report): string {
  const t = (ms: number) => new Date(ms).toISOString().slice(0, 16).replace('T', ' ');
  const n = r.data.totals.current.bans;
  return `tallow report for ${node}: ${n} ban${n === 1 ? '' : 's'} (${t(r.data.period.since)} to ${t(r.data.period.until)} UTC)`;
}

/** Sends it (sendmail, or SMTP with smtp=); resolves to null when it was taken, else why not. */
export async function mailReport(a: MailAction, r: Report, now = Date.now()): Promise<string | null> {
  const node = os.hostname();
  const from = a.from || `root@${node}`;
  const message = buildMessage({ from, to: a.to, subject: reportSubject(node, r), node, date: new Date(now) }, { text: r.text, html: r.html });
  let transport;
  try {
    transport = mailTransport(a);
  } catch (e) {
    return errText(e);
  }
  try {
    return await transport.send(message, { from, to: a.to });
  } finally {
    transport.close();
  }
}
