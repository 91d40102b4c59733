// What a daemon starts from: the state file (records, bans, the journal position) and the bans
// the kernel already holds (adopted with their remaining time).
import * as path from 'node:path';
import type { Config } from './config';
import type { Engine } from './engine';
import type { Firewall } from './firewall';
import type { Ledger } from './ledger';
import { errText } from './limits';
import type { StateListener } from './listeners/state';
import type { Log } from './log';
import { checkPrivateDir } from './private-dir';
import type { Scoring } from './scoring';
import { checkStateDir, liveRecords, StateStore, type State } from './state';

/** What restoring fills (the Daemon itself). */
export interface RestoreTarget {
  readonly engine: Engine;
  readonly scoring: Scoring;
  readonly ledger: Ledger;
  readonly firewall: Firewall;
  readonly state: StateListener | null;
  readonly log: Log;
}

/** The state directory checked and its file read (a dry run never calls this). */
export function loadState(config: Config, log: Log): { state: State | null; store: StateStore } {
  // Directories another user could write are refused (exit 78) before anything is touched:
  // they could plant links for the root daemon to write through, or swap the socket.
  checkStateDir(config.stateDir);
  checkPrivateDir(path.dirname(config.socket), 'control socket directory');
  const store = new StateStore(config.stateDir);
  let state: State | null = null;
  try {
    const loaded = store.load();
    if (loaded.problem) log.warn(`state file problem: ${loaded.problem}; starting without saved state`, { file: store.file });
    // The log's trouble (a torn last save, a log of another snapshot): the state is still used.
    if (loaded.note) log.warn(`state: ${loaded.note}`, { file: store.logFile });
    state = loaded.state;
  } catch (e) {
    log.warn(`state file unreadable: ${errText(e)}; starting without saved state`, { file: store.file });
  }
  return { state, store };
}

/** Records, then bans (back into the kernel with their remaining time, through the ledger). */
export function restoreState(d: RestoreTarget, state: State): void {
  const now = Date.now();
  let records = 0;
  let orphans = 0;
  for (const r of liveRecords(state, now, d.engine.config.expires)) {
    try {
      if (d.scoring.restore(r)) records++;
      else orphans++;
    } catch (e) {
      d.log.warn(`state: record not restored: ${errText(e)}`, { address: String(r?.address) });
    }
  }
  // Files of version 1 kept no score or count with a ban: the record has them.
  const bans = state.bans.map((b) => {
    const rec = b.count ? undefined : d.scoring.get(b.address);
    return rec ? { ...b, score: rec.score, count: rec.count } : b;
  });
  const n = d.ledger.restore(bans, now);
  // Records of a rule no longer there: nothing would score into them (their bans are kept).
  if (orphans) d.log.info(`state: ${orphans} records of rules no longer configured not restored`);
  d.log.info(`state restored: ${records} records, ${n} active bans put back with their remaining time`, {
    file: d.state?.store.file ?? '',
    saved: new Date(state.saved).toISOString(),
  });
}

/** The bans already in the kernel's sets become the ledger's, with their remaining time. */
export async function adoptKernelBans(d: RestoreTarget): Promise<void> {
  let kernel;
  try {
    kernel = await d.firewall.list();
  } catch (e) {
    d.log.warn(`could not read the bans already in the kernel: ${errText(e)}`);
    return;
  }
  // What the kernel holds in a rule's scope is that rule's ban when no other rule bans there.
  const rules = d.engine.rules;
  const known = (address: string, scope: string) => {
    const of = rules.filter((r) => r.scope.id === scope);
    const rec = of.length === 1 ? d.scoring.get(address, of[0].pool) : scope === '' ? d.scoring.get(address) : undefined;
    return rec ? { ...rec, rule: of.length === 1 ? of[0].name : null } : undefined;
  };
  const n = d.ledger.adopt(kernel, Date.now(), known);
  if (n) d.log.info(`firewall: ${n} bans found in the kernel adopted with their remaining time`);
}
