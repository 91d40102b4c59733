// `allow` requests of the control socket: the running allowlist, and entries added or removed at
// runtime. A change is written to the daemon's drop-in (allow-dropin.ts) and then the daemon
// reloads, so what runs is exactly what a restart would read; adding an entry also lifts the bans
// it covers (the administrator says: these are ours).
import { parseAllowEntry } from './allowlist';
import { allowDropin, entryText, readAllowDropin, writeAllowDropin } from './allow-dropin';
import { loadConfig } from './config';
import type { Daemon } from './daemon';
import { errText } from './limits';
import { familyOf, FULL_PREFIX, overlaps, parseNetwork, type Network } from './target';
import { portsText } from './scoring';

export type AllowRequest = { cmd: 'allow'; op: 'list' } | { cmd: 'allow'; op: 'add' | 'remove'; entry: string };

/** `allow list` */
export interface AllowListResult {
  /** the running allowlist, as the configuration gives it (defaults, tallow.conf, drop-ins) */
  entries: string[];
  /** those added with `tallow allow add` (in `file`) */
  added: string[];
  file: string;
}

/** `allow add|remove` */
export interface AllowChangeResult {
  entry: string;
  file: string;
  /** false: it was already there (add) or not there (remove); nothing written */
  changed: boolean;
  /** bans lifted because the new entry covers them (add): `203.0.113.5 (all ports)` */
  lifted?: string[];
}

/** Check an `allow` request (control.ts calls this); the entry comes back canonical. */
export function validateAllow(v: Record<string, unknown>): { req: AllowRequest } | { error: string } {
  for (const k of Object.keys(v)) {
    if (!['cmd', 'op', 'entry'].includes(k)) return { error: `allow: unexpected field ${JSON.stringify(k).slice(0, 80)}` };
  }
  if (v.op === 'list') {
    if (v.entry !== undefined) return { error: 'allow: list takes no "entry"' };
    return { req: { cmd: 'allow', op: 'list' } };
  }
  if (v.op !== 'add' && v.op !== 'remove') return { error: 'allow: "op" must be add, remove or list' };
  if (typeof v.entry !== 'string') return { error: `allow ${v.op}: "entry" must be a string (an address or a network)` };
  try {
    return { req: { cmd: 'allow', op: v.op, entry: entryText(parseAllowEntry(v.entry.slice(0, 200))) } };
  } catch (e) {
    return { error: `allow ${v.op}: ${errText(e)}` };
  }
}

/** A canonical entry or ban target as a network (an address is its own /32 or /128). */
function asNetwork(target: string): Network {
  return parseNetwork(target) ?? { base: target, family: familyOf(target), prefix: FULL_PREFIX[familyOf(target)] };
}

export async function allowRequest(d: Daemon, req: AllowRequest): Promise<{ ok: true; result: unknown } | { ok: false; error: string; exitCode?: number }> {
  const file = allowDropin(d.configFile);
  const added = readAllowDropin(file);
  if (req.op === 'list') {
    const result: AllowListResult = { entries: [...d.engine.config.whitelist], added, file };
    return { ok: true, result };
  }
  const { entry } = req;
  const next = req.op === 'add' ? (added.includes(entry) ? null : [...added, entry]) : added.includes(entry) ? added.filter((e) => e !== entry) : null;
  if (next === null && req.op === 'remove') {
    // In tallow.conf or another drop-in: the administrator's file, not ours to edit.
    const running = d.engine.config.whitelist.some((w) => {
      try {
        return entryText(parseAllowEntry(w)) === entry;
      } catch {
        return false;
      }
    });
    if (running) return { ok: false, error: `${entry} was not added with tallow allow add; it comes from ${d.engine.config.file ?? 'the built-in defaults'} or another drop-in: remove it there` };
  }
  if (next !== null) {
    writeAllowDropin(file, next);
    // Values made with `tallow set` stay: adding an allowlist entry is not a request to reread the rules.
    if (!d.reload({ keepSettings: true })) {
      // The configuration on disk does not load (changed by hand since?): put our file back.
      writeAllowDropin(file, added);
      let why = 'see the daemon log';
      try {
        loadConfig(d.configFile, d.explicitConfig);
      } catch (e) {
        why = errText(e);
      }
      return { ok: false, error: `not changed: the configuration does not load: ${why}`, exitCode: 78 };
    }
    if (req.op === 'add') {
      const a = parseAllowEntry(entry);
      if (!d.engine.allowlist.has(a.address, a.family)) {
        return { ok: false, error: `${entry} was written to ${file}, but a later drop-in clears the allowlist (an empty whitelist= line): it is not in force` };
      }
    }
  }
  const result: AllowChangeResult = { entry, file, changed: next !== null };
  if (req.op === 'add') result.lifted = await liftCovered(d, asNetwork(entry));
  // Who may connect changed at runtime: worth a line of its own.
  if (result.changed) d.log.info(`allowlist: ${entry} ${req.op === 'add' ? 'added' : 'removed'} (tallow allow ${req.op})`, { file, ...(result.lifted?.length ? { lifted: result.lifted.join(', ') } : {}) });
  return { ok: true, result };
}

/** Bans of addresses or networks the entry covers (or overlaps) are lifted and their records forgotten. */
async function liftCovered(d: Daemon, net: Network): Promise<string[]> {
  const now = Date.now();
  const targets = new Set<string>();
  for (const b of d.ledger.values()) if (overlaps(net, asNetwork(b.address))) targets.add(b.address);
  const scopes = d.scopes();
  const lifted: string[] = [];
  for (const t of targets) {
    const bans = d.ledger.unbanAll(t, 'manual', now);
    d.scoring.unban(t, familyOf(t));
    for (const b of bans) lifted.push(`${t} (${portsText(scopes.get(b.scope), b.scope) === 'all' ? 'all ports' : `ports ${portsText(scopes.get(b.scope), b.scope)}`})`);
    await Promise.all(bans.map((b) => d.firewall.outcome(t, b.scope)));
  }
  if (targets.size) d.state?.changed();
  return lifted;
}
