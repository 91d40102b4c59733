// The control socket's requests, answered from the daemon's parts: status and metrics from the
// Metrics object, the list from the ledger, ban and unban through the ledger like any other ban.
// control.ts has already validated each request (canonical address, seconds in range).
import type { ControlRequest, ControlResponse, ListItem, StatusResult } from './control';
import type { Daemon } from './daemon';
import { errText } from './limits';
import { fmtScore } from './listeners/log';
import type { Logger } from './log';
import { version } from './version';
import { historyQuery } from './history/query';

export class Requests {
  constructor(private readonly d: Daemon) {}

  status(): StatusResult & Record<string, unknown> {
    const d = this.d;
    const m = d.metrics;
    const sum = (map: Map<string, number>) => [...map.values()].reduce((a, b) => a + b, 0);
    return {
      version: version(),
      pid: process.pid,
      uptime: Math.round((Date.now() - d.started) / 1000),
      backend: d.firewall.backend.name,
      entries: m.entriesRead,
      matches: sum(m.matchesByFile),
      bansActive: d.ledger.size,
      records: d.tracker.size,
      cursor: d.reader.cursor,
      config: d.engine.config.file,
      stateFile: d.state?.store.file,
      lastSave: d.state?.lastSave ?? null,
      position: d.reader.position,
      skipped: m.entriesTooOld,
      bans: sum(m.bansByReason),
      unbans: sum(m.unbansByReason),
      evicted: d.tracker.evicted,
      dryRun: d.dryRun,
      listeners: d.events.stats(),
      metrics: m.json(),
    };
  }

  /** Active bans, from the ledger alone, soonest to end first. */
  list(): ListItem[] {
    const now = Date.now();
    const out: ListItem[] = [];
    for (const b of this.d.ledger.values()) {
      if (b.expiry <= now) continue;
      out.push({
        address: b.address,
        family: b.family,
        remaining: Math.ceil((b.expiry - now) / 1000),
        score: b.score,
        count: b.count,
        pattern: b.pattern,
        origin: b.origin,
        reason: b.reason,
        ...(b.step ? { step: b.step } : {}),
      });
    }
    out.sort((a, b) => a.remaining - b.remaining);
    return out;
  }

  async handle(req: ControlRequest): Promise<ControlResponse> {
    const d = this.d;
    try {
      switch (req.cmd) {
        case 'status':
          return { ok: true, result: this.status() };
        case 'list':
          return { ok: true, result: this.list() };
        case 'metrics':
          return { ok: true, result: { text: d.metrics.prometheus() } };
        case 'ban': {
          const { address } = req;
          const family = address.includes(':') ? 6 : 4;
          const seconds = req.seconds ?? d.engine.config.expires;
          const now = Date.now();
          const why = d.ledger.refusal(address, family);
          if (why) return { ok: false, error: `${address} was not banned: ${why}` };
          const [decision] = d.tracker.ban(address, family, seconds, now);
          if (!decision || decision.action !== 'ban') return { ok: false, error: `${address} was not banned (allowlisted)` };
          // A manual ban replaces whatever ban there was, even a longer one.
          const out = d.ledger.ban({ ...decision, origin: 'manual' }, now, true);
          if (!out.ok) return { ok: false, error: `${address} was not banned: ${out.why}` };
          const notYet = await d.firewall.outcome(address);
          // Refused by the kernel: dropped, and the ledger has forgotten it. Otherwise it is held
          // and will reach the kernel when the firewall works again.
          if (notYet && !d.ledger.get(address)) return { ok: false, error: `${address} was not banned: the firewall refused it: ${notYet}` };
          return { ok: true, result: { address, family, seconds: Math.ceil(seconds), ...(notYet ? { pending: notYet } : {}) } };
        }
        case 'unban': {
          const { address } = req;
          const family = address.includes(':') ? 6 : 4;
          const had = d.ledger.unban(address, 'manual', Date.now());
          d.tracker.unban(address, family);
          // Not in the ledger: still make sure the kernel holds nothing for it (a removal of an
          // absent entry is no error).
          if (!had) d.firewall.unban([{ address, family }]);
          d.state?.changed();
          const why = await d.firewall.outcome(address);
          return { ok: true, result: { address, family, wasBanned: had !== undefined, ...(why ? { pending: why } : {}) } };
        }
        case 'history': {
          if (!d.history) return { ok: false, error: d.dryRun ? 'a dry run keeps no history' : 'the history is off (history=off in tallow.conf)' };
          const allow = d.engine.allowlist;
          return { ok: true, result: await historyQuery(d.history.store, req, (a, f) => allow.has(a, f)) };
        }
        default:
          return { ok: false, error: `unknown command: ${String((req as { cmd?: unknown }).cmd)}` };
      }
    } catch (e) {
      return { ok: false, error: errText(e) };
    }
  }

  /** SIGUSR1: the record table, one line per record, and bans without a record. */
  recordTable(log: Logger): void {
    const d = this.d;
    const now = Date.now();
    const left = (a: string) => Math.max(0, Math.ceil((d.ledger.expiryOf(a) - now) / 1000));
    log.info(`record table: ${d.tracker.size} records, ${d.ledger.size} active bans`);
    for (const r of d.tracker.records()) {
      log.info('record', {
        address: r.address,
        score: fmtScore(r.score),
        count: String(r.count),
        first: new Date(r.first).toISOString(),
        last: new Date(r.last).toISOString(),
        banned: String(r.banned),
        ban_left: String(left(r.address)),
        pattern: r.pattern ?? '',
      });
    }
    for (const b of d.ledger.values()) {
      if (!d.tracker.get(b.address)) log.info('ban without record', { address: b.address, ban_left: String(left(b.address)), pattern: b.pattern ?? '', origin: b.origin });
    }
  }
}
