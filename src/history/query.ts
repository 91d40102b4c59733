// `tallow history`: what happened to an address (or a network, or everyone) and why, the most
// banned addresses, and the allowlisted addresses that attacked, from any store. The daemon
// answers it over the control socket; the CLI runs the same code on the file when the daemon is
// not running.
import { Allowlist } from '../allowlist';
import { parseAddress, type Family } from '../address';
import type { HistoryItem, HistoryStore, TopItem } from './store';

export interface HistoryRequest {
  cmd: 'history';
  /** an address or a network (CIDR), canonical */
  address?: string;
  /** ms since epoch */
  since?: number;
  rule?: string;
  top?: boolean;
  limit?: number;
}

export interface HistoryResult {
  /** oldest first (the newest `limit`) */
  items?: HistoryItem[];
  top?: TopItem[];
  /** allowlisted addresses in scope that attacked: never banned, so an entry may hide an attacker */
  allowlisted: TopItem[];
}

export const DEFAULT_LIMIT = 200;
/** A network query looks at this many of its addresses at most (each is an index lookup). */
const MAX_ADDRESSES = 1000;

/** `203.0.113.0/24` -> a test; a single address -> null (asked for directly). */
function networkTest(text: string): ((address: string) => boolean) | null {
  if (!text.includes('/')) return null;
  const net = new Allowlist([text]);
  return (a) => {
    const p = parseAddress(a);
    return p !== null && net.has(p.address, p.family);
  };
}

export async function historyQuery(store: HistoryStore, req: HistoryRequest, isAllowed: (address: string, family: Family) => boolean): Promise<HistoryResult> {
  const since = req.since ?? 0;
  const limit = req.limit ?? DEFAULT_LIMIT;
  const inNet = req.address ? networkTest(req.address) : null;
  // One address; the addresses of a network seen in the window; or everyone.
  let addresses: string[] | null = null;
  if (req.address && !inNet) addresses = [req.address];
  else if (inNet) addresses = (await store.addresses(since)).filter(inNet).sort().slice(0, MAX_ADDRESSES);

  const allowed = (a: string) => {
    const p = parseAddress(a);
    return p !== null && isAllowed(p.address, p.family);
  };
  const candidates = addresses ?? (await store.addresses(since));
  const allowlisted: TopItem[] = [];
  for (const a of candidates.filter(allowed).slice(0, MAX_ADDRESSES)) {
    const item = await summary(store, a, since, 0, null);
    if (item.matches > 0) allowlisted.push(item);
  }
  allowlisted.sort((x, y) => y.matches - x.matches || x.address.localeCompare(y.address));

  if (req.top) {
    const top: TopItem[] = [];
    for (const t of await store.topBanned(since, req.rule, limit)) {
      if (inNet && !inNet(t.address)) continue;
      top.push(await summary(store, t.address, since, t.bans, t.lastBan));
    }
    return { top, allowlisted };
  }

  const items: HistoryItem[] = [];
  for (const address of addresses ?? [undefined]) {
    const f = { address, since: req.since, rule: req.rule, limit };
    items.push(...(await store.bans(f)), ...(await store.matches(f)));
  }
  const time = (i: HistoryItem) => (i.kind === 'ban' ? i.since : i.at);
  items.sort((x, y) => time(y) - time(x));
  return { items: items.slice(0, limit).reverse(), allowlisted };
}

async function summary(store: HistoryStore, address: string, since: number, bans: number, lastBan: number | null): Promise<TopItem> {
  const per = await store.matchSummary(address, since);
  return {
    address,
    bans,
    matches: per.reduce((n, p) => n + p.n, 0),
    lastBan,
    lastSeen: per.reduce((m, p) => Math.max(m, p.last), lastBan ?? 0),
    rules: per.filter((p) => p.pattern !== '*').map((p) => p.pattern),
  };
}

const HISTORY_FIELDS = ['cmd', 'address', 'since', 'rule', 'top', 'limit'];

/** control.ts's check of a `history` request: an address or network, a time, a rule name, a count. */
export function validateHistory(v: Record<string, unknown>): { req: HistoryRequest } | { error: string } {
  for (const k of Object.keys(v)) if (!HISTORY_FIELDS.includes(k)) return { error: `history: unexpected field ${JSON.stringify(k).slice(0, 80)}` };
  const req: HistoryRequest = { cmd: 'history' };
  if (v.address !== undefined) {
    const text = typeof v.address === 'string' ? v.address : '';
    const shown = JSON.stringify(String(v.address).slice(0, 80));
    const slash = text.indexOf('/');
    const a = parseAddress(slash < 0 ? text : text.slice(0, slash));
    if (!a) return { error: `history: ${shown} is not an address or a network (CIDR)` };
    if (slash < 0) req.address = a.address;
    else {
      try {
        new Allowlist([text]);
      } catch {
        return { error: `history: ${shown} is not a valid network (CIDR, e.g. 203.0.113.0/24)` };
      }
      req.address = `${a.address}/${text.slice(slash + 1)}`;
    }
  }
  if (v.since !== undefined) {
    if (typeof v.since !== 'number' || !Number.isSafeInteger(v.since) || v.since < 0) return { error: `history: "since" must be ms since the epoch, not ${JSON.stringify(v.since)}` };
    req.since = v.since;
  }
  if (v.rule !== undefined) {
    if (typeof v.rule !== 'string' || !/^[\w.@-]{1,200}(?:#\d{1,6})?$/.test(v.rule)) return { error: `history: "rule" must be a pattern file or pattern (sshd.json, sshd.json#3), not ${JSON.stringify(v.rule).slice(0, 80)}` };
    req.rule = v.rule;
  }
  if (v.top !== undefined) {
    if (typeof v.top !== 'boolean') return { error: 'history: "top" must be true or false' };
    req.top = v.top;
  }
  if (v.limit !== undefined) {
    if (typeof v.limit !== 'number' || !Number.isInteger(v.limit) || v.limit < 1 || v.limit > 100_000) return { error: 'history: "limit" must be a whole number from 1 to 100000' };
    req.limit = v.limit;
  }
  return { req };
}
