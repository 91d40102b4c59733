// How a mail action's messages leave: sendmail(8) (`sendmail -t -oi`, the default), or SMTP
// (`smtp=`; smtp.ts, with nodemailer, loaded only when an action is configured so). The message is
// the same either way (message.ts); SMTP sends it as it is, with the envelope from its headers.
import * as fs from 'node:fs';
import { errText } from '../limits';
import { outcome, runProgram } from './run';
import { readSecret } from './secret';
import type { MailAction } from './settings';

export interface Envelope {
  from: string;
  to: string[];
}

export interface MailTransport {
  /** Resolves to null once the server or program took the message, else why not (for the log). */
  send(message: string, envelope: Envelope): Promise<string | null>;
  close(): void;
}

function sendmail(a: MailAction): MailTransport {
  return {
    async send(message) {
      const r = await runProgram([...a.sendmail, '-t', '-oi'], { env: process.env, input: message, timeoutMs: a.timeoutMs });
      if (r.ok) return null;
      const said = [r.stderr.trim(), r.stdout.trim()].filter(Boolean).join(' / ').slice(0, 500);
      return `${a.sendmail[0]} ${outcome(r, a.timeoutMs)}${said ? `: ${said}` : ''}`;
    },
    close() {},
  };
}

/**
 * The transport of an action. Its password and CA files are read now: throws Error naming the
 * key and the file (a password file others may read is refused).
 */
export function mailTransport(a: MailAction): MailTransport {
  if (!a.smtp) return sendmail(a);
  const password = a.passwordFile ? readSecret(`action.${a.name}.password_file`, a.passwordFile) : '';
  let ca = '';
  try {
    ca = a.caFile ? fs.readFileSync(a.caFile, 'utf8') : '';
  } catch (e) {
    throw new Error(`action.${a.name}.ca_file=${a.caFile}: cannot read it: ${(e as NodeJS.ErrnoException).code ?? errText(e)}`);
  }
  const { smtpTransport } = require('./smtp') as typeof import('./smtp');
  return smtpTransport(a, a.smtp, password, ca);
}
