// What a ban or unban event says, as the strings every action uses (placeholders, environment,
// webhook JSON, mail lines). Fields other branches add to Ban (the rule, the scope) are read
// when present and empty when not.
import * as net from 'node:net';
import type { NotifyEvent, TallowEvent } from '../events';
import type { Ban, LedgerEvent } from '../ledger';
import { fmtScore } from '../listeners/log';
import type { Values } from './argv';

/** `notify`: a notify rule's match (a login alert, issue 16.4). */
export type ActionEventKind = 'ban' | 'unban' | 'notify';

/** What actions act on: bans, unbans, notify rules' matches. */
export type ActionEvent = LedgerEvent | NotifyEvent;

/** A ban as rules per service will make it: the rule's name, where it applies. */
type BanWithRule = Ban & { rule?: string; scope?: string | { id?: string } };

export function ruleOf(ban: Ban): string {
  return (ban as BanWithRule).rule ?? '';
}

/** `203.0.113.7/32`, `2001:db8::7/128`, or the network itself when a rule bans networks. */
export function networkOf(ban: Ban): string {
  if (ban.address.includes('/')) return ban.address;
  return `${ban.address}/${ban.family === 4 ? 32 : 128}`;
}

/** An address or network as the ledger holds them; nothing else ever reaches a command. */
export function validAddress(a: string): boolean {
  const [ip, bits, ...rest] = a.split('/');
  if (rest.length || net.isIP(ip) === 0) return false;
  return bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (net.isIPv4(ip) ? 32 : 128));
}

export function valuesOf(e: ActionEvent): Values {
  if (e.kind === 'notify') return notifyValues(e);
  const b = e.ban;
  return {
    event: e.kind,
    address: b.address,
    family: String(b.family),
    seconds: String(Math.max(0, Math.round((b.expiry - b.since) / 1000))),
    rule: ruleOf(b),
    pattern: b.pattern ?? '',
    score: fmtScore(b.score),
    count: String(b.count),
    reason: e.kind === 'ban' ? b.reason : e.reason,
    network: networkOf(b),
    user: '',
    method: '',
    fingerprint: '',
  };
}

/** A login: who, from where, how; what only a ban has (seconds, score, count) is empty. */
export function notifyValues(e: NotifyEvent): Values {
  return {
    event: 'notify',
    address: e.address,
    family: String(e.family),
    seconds: '',
    rule: e.rule,
    pattern: e.pattern,
    score: '',
    count: '',
    reason: 'notify',
    network: `${e.address}/${e.family === 4 ? 32 : 128}`,
    user: e.user,
    method: e.method,
    fingerprint: e.fingerprint,
  };
}

/**
 * The events actions act on: bans decided now (`new`; `restored` too when asked, for a command
 * that is the firewall and whose work a reboot may have undone) and every unban. Bans adopted
 * from the kernel at start were acted on before the restart.
 */
export function actionable(e: TallowEvent, on: ReadonlySet<ActionEventKind>, restored = false): e is ActionEvent {
  if (e.kind === 'notify') return on.has('notify');
  if (e.kind === 'ban') return on.has('ban') && (e.cause === 'new' || (restored && e.cause === 'restored'));
  return e.kind === 'unban' && on.has('unban');
}
