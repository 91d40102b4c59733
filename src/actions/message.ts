// A mail for sendmail(8): RFC 5322 headers (Date, From, To, Subject, Message-ID, MIME-Version),
// the subject as UTF-8 encoded-words when it is not plain ASCII, and a multipart/alternative body
// with a plain-text and an HTML part, each UTF-8 in base64 (no line is ever too long, whatever an
// event holds). Every value an attacker can influence is HTML-escaped in the HTML part.
import { randomBytes } from 'node:crypto';

export interface MailPart {
  text: string;
  html: string;
}

export interface MailHeaders {
  from: string;
  to: string[];
  subject: string;
  /** host name for the Message-ID */
  node: string;
  date: Date;
}

export function htmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** `Thu, 21 Nov 2026 12:17:03 +0100` (RFC 5322 3.3), in this host's time zone. */
export function rfc5322Date(d: Date): string {
  const days = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const p = (n: number) => String(n).padStart(2, '0');
  const off = -d.getTimezoneOffset();
  const zone = `${off >= 0 ? '+' : '-'}${p(Math.floor(Math.abs(off) / 60))}${p(Math.abs(off) % 60)}`;
  return `${days[d.getDay()]}, ${d.getDate()} ${months[d.getMonth()]} ${d.getFullYear()} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())} ${zone}`;
}

/**
 * A header value: as it is when printable ASCII, else RFC 2047 encoded-words (UTF-8, base64),
 * each at most 75 characters and never splitting a character, folded onto continuation lines.
 */
export function encodeHeader(value: string): string {
  const clean = value.replace(/[\r\n]+/g, ' ');
  if (/^[\x20-\x7e]*$/.test(clean)) return clean;
  const words: string[] = [];
  let chunk = '';
  // 45 bytes of UTF-8 -> 60 base64 characters + 12 of =?UTF-8?B??= : 72.
  for (const ch of clean) {
    if (Buffer.byteLength(chunk + ch) > 45) {
      words.push(chunk);
      chunk = '';
    }
    chunk += ch;
  }
  if (chunk) words.push(chunk);
  return words.map((w) => `=?UTF-8?B?${Buffer.from(w, 'utf8').toString('base64')}?=`).join('\n ');
}

function base64Lines(s: string): string {
  return (Buffer.from(s, 'utf8').toString('base64').match(/.{1,76}/g) ?? []).join('\n');
}

/** The whole message, LF line ends (sendmail -t -oi takes a local text file). */
export function buildMessage(h: MailHeaders, body: MailPart): string {
  const boundary = `=_tallow_${randomBytes(12).toString('hex')}`;
  const id = `<${h.date.getTime()}.${randomBytes(6).toString('hex')}@${h.node.replace(/[^A-Za-z0-9.-]/g, '') || 'localhost'}>`;
  const lines = [
    `Date: ${rfc5322Date(h.date)}`,
    `From: ${h.from}`,
    `To: ${h.to.join(', ')}`,
    `Subject: ${encodeHeader(h.subject)}`,
    `Message-ID: ${id}`,
    'MIME-Version: 1.0',
    `Content-Type: multipart/alternative; boundary="${boundary}"`,
    // RFC 3834: no vacation replies to a machine.
    'Auto-Submitted: auto-generated',
    '',
    'This is a MIME message: a text and an HTML version of the same report.',
    '',
  ];
  for (const [type, content] of [['text/plain', body.text], ['text/html', body.html]] as const) {
    lines.push(`--${boundary}`, `Content-Type: ${type}; charset=utf-8`, 'Content-Transfer-Encoding: base64', '', base64Lines(content), '');
  }
  lines.push(`--${boundary}--`, '');
  return lines.join('\n');
}
