// Mail by SMTP (`action.NAME.smtp=`), through nodemailer: STARTTLS required by default (never a
// password or a mail in clear unless `starttls=off`), AUTH when a user is given, the server's
// certificate checked (against ca_file when given). Loaded only when an action is configured so.
import * as os from 'node:os';
import * as nodemailer from 'nodemailer';
import type { MailAction, SmtpServer } from './settings';
import type { MailTransport } from './transport';

/** Why a send failed, as an administrator reads it: what nodemailer's codes mean, and the server's words. */
function reason(e: unknown): string {
  const err = e as { code?: string; response?: string; message?: string };
  const what: Record<string, string> = {
    EAUTH: 'authentication failed',
    ECONNECTION: 'cannot connect',
    ETIMEDOUT: 'timed out',
    ESOCKET: 'connection failed',
    ETLS: 'TLS failed',
    EENVELOPE: 'recipient or sender refused',
    EMESSAGE: 'message refused',
    EPROTOCOL: 'protocol error',
  };
  const detail = (err.response ?? err.message ?? String(e)).replace(/\s+/g, ' ').trim().slice(0, 300);
  // nodemailer calls a refused or unroutable connection a socket error: say what it is.
  const unreachable = /\b(?:ECONNREFUSED|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN)\b/.test(detail);
  const head = unreachable ? 'cannot connect' : (err.code && what[err.code]) || 'failed';
  return `${head}${err.code ? ` (${err.code})` : ''}: ${detail}`;
}

export function smtpTransport(a: MailAction, server: SmtpServer, password: string, ca: string): MailTransport {
  const starttls = a.starttls ?? 'required';
  const transport = nodemailer.createTransport({
    host: server.host,
    port: server.port,
    secure: server.tls,
    requireTLS: !server.tls && starttls === 'required',
    ignoreTLS: !server.tls && starttls === 'off',
    ...(a.user ? { auth: { user: a.user, pass: password } } : {}),
    ...(ca ? { tls: { ca } } : {}),
    name: os.hostname(),
    connectionTimeout: a.timeoutMs,
    greetingTimeout: a.timeoutMs,
    socketTimeout: a.timeoutMs,
    // One message at a time: no pool, no files or URLs read on a message's behalf.
    disableFileAccess: true,
    disableUrlAccess: true,
    logger: false,
  });
  return {
    async send(message, envelope) {
      try {
        await transport.sendMail({ envelope: { from: envelope.from, to: envelope.to } as nodemailer.SendMailOptions['envelope'], raw: message });
        return null;
      } catch (e) {
        return `SMTP ${server.url}${a.user ? ` as ${a.user}` : ''}: ${reason(e)}`;
      }
    },
    close() {
      transport.close();
    },
  };
}
