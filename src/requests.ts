// The control socket's requests, answered from the daemon's parts: status and metrics from the
// Metrics object, the list from the ledger, the rules from the engine, the scores and the
// counters, ban and unban through the ledger like any other ban. control.ts has already
// validated each request (canonical address, seconds in range).
import type { Family } from './address';
import type { ControlResponse } from './control';
import type { ControlRequest } from './control-requests';
import type { ListItem, RuleInfo, SettingResult, StatusResult } from './control-results';
import type { Daemon } from './daemon';
import { errText } from './limits';
import { fmtScore } from './listeners/log';
import type { Logger } from './log';
import type { MatchGroup } from './journal';
import type { PatternFile } from './patterns';
import type { Rule } from './rule';
import { defaultRuleName } from './rules';
import { ruleInfoExtra, type RuleInfoExtra } from './rule-info';
import { portsText } from './scoring';
import { familyOf, isNetwork, overlaps, parseNetwork } from './target';
import { splitKey } from './runtime-settings';
import { MANUAL_NETWORKS } from './scope';
import type { BanDecision } from './tracker';
import { version } from './version';
import { historyQuery } from './history/query';
import { allowRequest } from './allow-control';
import type { FiguresCache } from './history/figures';

/** Addresses shown per rule in `tallow rules`. */
export const TOP_ADDRESSES = 5;
const FILTER_SHOWN = 120;

/**
 * The journal filter of a rule, short: `_EXE=/usr/sbin/sshd | SYSLOG_IDENTIFIER=sshd _UID=0`. From
 * every block of the rule (as rules.ts names them), disabled rules' included.
 */
function filterText(rule: Rule, files: PatternFile[]): string {
  const groups: MatchGroup[] = files.filter((f) => !f.override && (f.keys.name ?? defaultRuleName(f)) === rule.name).flatMap((f) => f.filter);
  if (groups.length === 0) return '-';
  const text = [...new Set(groups.map((g) => g.join(' ')))].join(' | ');
  return text.length > FILTER_SHOWN ? `${text.slice(0, FILTER_SHOWN - 3)}...` : text;
}



export class Requests {
  /** Loaded at the first status with a history (a daemon with history=off never loads the store's code). */
  private figures: FiguresCache | null = null;

  constructor(private readonly d: Daemon) {}

  /** status, with the history's figures read from the store (history/figures.ts). */
  private async statusWithHistory(): Promise<StatusResult> {
    const d = this.d;
    const result: StatusResult = this.status();
    if (!d.history) return result;
    this.figures ??= new (require('./history/figures') as typeof import('./history/figures')).FiguresCache();
    const q = d.events.stats().find((l) => l.name === 'history');
    result.history = { ...(await this.figures.get(d.history.store)), queued: q?.queued ?? 0, dropped: q?.dropped ?? 0 };
    return result;
  }

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
      records: d.scoring.size,
      cursor: d.reader.cursor,
      config: d.engine.config.file,
      stateFile: d.state?.store.file,
      lastSave: d.state?.lastSave ?? null,
      position: d.reader.position,
      skipped: m.entriesTooOld,
      bans: sum(m.bansByReason),
      unbans: sum(m.unbansByReason),
      evicted: d.scoring.evicted,
      rules: d.engine.rules.map((r) => ({ name: r.name, enabled: r.enabled, matches: m.matchesByRule.get(r.name) ?? 0, bansActive: this.activeByRule().get(r.name) ?? 0 })),
      dryRun: d.dryRun,
      listeners: d.events.stats(),
      ...(d.fleet ? { fleet: d.fleet.status() } : {}),
      metrics: m.json(),
    };
  }

  /** Bans in force per rule (one pass over the ledger). */
  private activeByRule(): Map<string, number> {
    const n = new Map<string, number>();
    for (const b of this.d.ledger.values()) if (b.rule !== null) n.set(b.rule, (n.get(b.rule) ?? 0) + 1);
    return n;
  }

  /** Every rule, or the one named (an empty list when there is none by that name). */
  rules(name?: string): (RuleInfo & RuleInfoExtra)[] {
    const d = this.d;
    const all = d.engine.rules;
    const active = this.activeByRule();
    const now = Date.now();
    return all
      .filter((r) => name === undefined || r.name === name)
      .map((r) => ({
        name: r.name,
        enabled: r.enabled,
        where: r.where,
        filter: filterText(r, d.engine.files),
        threshold: r.threshold,
        findtime: r.findtime,
        bantime: r.bantime,
        ports: portsText(r.scope, r.scope.id),
        scope: r.scope.id,
        prefix: { ...r.prefix },
        pool: r.pool,
        ...ruleInfoExtra(r),
        matches: d.metrics.matchesByRule.get(r.name) ?? 0,
        bans: d.metrics.bansByRule.get(r.name) ?? 0,
        bansActive: active.get(r.name) ?? 0,
        // A shared pool's scores are every such rule's: shown with each of them.
        top: d.scoring.top(r.pool, TOP_ADDRESSES, now, r.findtime),
      }));
  }

  /** Active bans, from the ledger alone, soonest to end first. */
  list(): ListItem[] {
    const now = Date.now();
    const out: ListItem[] = [];
    const scopes = this.d.scopes();
    for (const b of this.d.ledger.values()) {
      if (b.expiry <= now) continue;
      out.push({
        address: b.address,
        family: b.family,
        rule: b.rule,
        ports: portsText(scopes.get(b.scope), b.scope),
        scope: b.scope,
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
          return { ok: true, result: await this.statusWithHistory() };
        case 'list': {
          const all = this.list();
          if (req.rule === undefined) return { ok: true, result: all };
          if (!d.engine.rules.some((r) => r.name === req.rule) && !all.some((i) => i.rule === req.rule)) return { ok: false, error: this.noRule(req.rule) };
          return { ok: true, result: all.filter((i) => i.rule === req.rule) };
        }
        case 'metrics':
          return { ok: true, result: { text: d.metrics.prometheus() } };
        case 'rules': {
          const rules = this.rules(req.name);
          if (req.name !== undefined && rules.length === 0) {
            return { ok: false, error: `no rule named ${JSON.stringify(req.name)} (rules: ${d.engine.rules.map((r) => r.name).join(', ')})` };
          }
          return { ok: true, result: rules };
        }
        case 'ban':
          return await this.ban(req);
        case 'unban':
          if (req.all) return await this.unbanAll();
          if (req.fleet && !d.fleet) return { ok: false, error: 'the fleet is off (fleet= in tallow.conf): nothing to lift elsewhere' };
          // Every node lifts it (its bans made before now) when it reads the row; here at once.
          if (req.fleet) d.fleet!.unbanEverywhere(req.address, familyOf(req.address), Date.now());
          return await this.unban(req.address, req.fleet === true);
        case 'reload': {
          const r = d.reloadService('tallow reload');
          // A configuration error is EX_CONFIG for the client too; the old configuration runs on.
          return 'error' in r ? { ok: false, error: `reload refused, still running the previous configuration: ${r.error}`, exitCode: 78 } : { ok: true, result: r };
        }
        case 'get':
        case 'set':
          return this.setting(req);
        case 'allow':
          return await allowRequest(d, req);
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

  private noRule(name: string): string {
    return `no rule named ${JSON.stringify(name)} (rules: ${this.d.engine.rules.map((r) => r.name).join(', ')})`;
  }

  /** By hand: an address or a network, on every port for `expires`, or on a rule's ports for its bantime. */
  private async ban(req: Extract<ControlRequest, { cmd: 'ban' }>): Promise<ControlResponse> {
    const d = this.d;
    const { address } = req;
    const family = familyOf(address);
    let rule: Rule | undefined;
    if (req.rule !== undefined) {
      rule = d.engine.rules.find((r) => r.name === req.rule);
      if (!rule) return { ok: false, error: this.noRule(req.rule) };
      if (!rule.enabled || rule.action === 'notify') return { ok: false, error: `rule ${rule.name} ${rule.enabled ? 'never bans ("action": "notify")' : 'is disabled'}: its ports have no sets to ban in` };
    }
    const seconds = req.seconds ?? rule?.bantime ?? d.engine.config.expires;
    const now = Date.now();
    const why = d.ledger.refusal(address, family);
    if (why) return { ok: false, error: `${address} was not banned: ${why}` };
    let decision: BanDecision;
    if (isNetwork(address)) {
      const net = parseNetwork(address)!;
      const allow = d.engine.allowlist;
      if (allow.has(net.base, family) || allow.entries.some((a) => overlaps(net, { base: a.address, family: a.family, prefix: a.prefix }))) {
        return { ok: false, error: `${address} was not banned: it holds allowlisted addresses` };
      }
      // Networks live in sets of their own (hash:net): a rule's that bans networks, or on every
      // port those made for bans by hand (kept across a restart: daemon.ts).
      if (rule && !rule.scope.net) return { ok: false, error: `rule ${rule.name} bans addresses, not networks (no ban_prefix): ban ${address} without --rule (every port)` };
      const scope = rule ? rule.scope : MANUAL_NETWORKS;
      if (!d.scopes().has(scope.id)) {
        try {
          await d.firewall.setScopes([scope]);
        } catch (e) {
          return { ok: false, error: `${address} was not banned: the sets for networks could not be made: ${errText(e)}` };
        }
        d.scopes().set(scope.id, scope);
      }
      decision = { action: 'ban', address, family, seconds, score: 0, count: 0, pattern: 'manual', reason: 'manual', scope: scope.id, rule: rule ? rule.name : null };
    } else {
      const [dec] = d.scoring.ban(address, family, seconds, now);
      if (!dec || dec.action !== 'ban') return { ok: false, error: `${address} was not banned (allowlisted)` };
      decision = rule ? { ...dec, scope: rule.scope.id, rule: rule.name } : dec;
    }
    // A manual ban replaces whatever ban there was in its scope, even a longer one.
    const out = d.ledger.ban({ ...decision, origin: 'manual' }, now, true);
    if (!out.ok) return { ok: false, error: `${address} was not banned: ${out.why}` };
    const notYet = await d.firewall.outcome(address, decision.scope);
    // Refused by the kernel: dropped, and the ledger has forgotten it. Otherwise it is held
    // and will reach the kernel when the firewall works again.
    if (notYet && !d.ledger.get(address, decision.scope)) return { ok: false, error: `${address} was not banned: the firewall refused it: ${notYet}` };
    const ports = portsText(d.scopes().get(decision.scope), decision.scope);
    return { ok: true, result: { address, family, seconds: Math.ceil(seconds), ...(rule ? { rule: rule.name, ports } : {}), ...(notYet ? { pending: notYet } : {}) } };
  }

  /** Every ban of the target, whatever rule made it and wherever it applies; its records are forgotten. */
  private async unban(address: string, fleet = false): Promise<ControlResponse> {
    const d = this.d;
    const family = familyOf(address);
    const lifted = d.ledger.unbanAll(address, 'manual', Date.now());
    d.scoring.unban(address, family);
    const scopes = d.scopes();
    // Not in the ledger: still make sure the kernel holds nothing for it in any scope (a
    // removal of an absent entry is no error).
    const removals: { address: string; family: 4 | 6; scope: string }[] = lifted.length ? [] : [...scopes.keys()].map((scope) => ({ address, family, scope }));
    if (removals.length) d.firewall.unban(removals);
    d.state?.changed();
    const waits = lifted.length ? lifted.map((b) => b.scope) : [...scopes.keys()];
    const why = (await Promise.all(waits.map((s) => d.firewall.outcome(address, s)))).find((w) => w) ?? null;
    return {
      ok: true,
      result: { address, family, wasBanned: lifted.length > 0, lifted: lifted.map((b) => portsText(scopes.get(b.scope), b.scope)), ...(why ? { pending: why } : {}), ...(fleet ? { fleet: true } : {}) },
    };
  }

  /** `unban --all`: every ban in the ledger, and the records of what was banned. */
  private async unbanAll(): Promise<ControlResponse> {
    const d = this.d;
    const now = Date.now();
    const targets = new Map<string, Family>();
    for (const b of d.ledger.values()) targets.set(b.address, b.family);
    const lifted: { address: string; scope: string }[] = [];
    for (const [address, family] of targets) {
      for (const b of d.ledger.unbanAll(address, 'manual', now)) lifted.push(b);
      d.scoring.unban(address, family);
    }
    d.state?.changed();
    const why = (await Promise.all(lifted.map((b) => d.firewall.outcome(b.address, b.scope)))).find((w) => w) ?? null;
    return { ok: true, result: { all: true, lifted: lifted.length, targets: targets.size, ...(why ? { pending: why } : {}) } };
  }

  /** `get` / `set` a rule's threshold, bantime or findtime. */
  private setting(req: Extract<ControlRequest, { cmd: 'get' | 'set' }>): ControlResponse {
    const d = this.d;
    const k = splitKey(req.key);
    if ('error' in k) return { ok: false, error: k.error };
    let previous: number | undefined;
    let changes: string[] | undefined;
    if (req.cmd === 'set') {
      const r = d.set(k.rule, k.setting, req.value);
      if ('error' in r) return { ok: false, error: r.error };
      ({ previous, changes } = r);
    }
    const rule = d.engine.rules.find((r) => r.name === k.rule);
    if (!rule) return { ok: false, error: this.noRule(k.rule) };
    if (rule.action === 'notify') return { ok: false, error: `rule ${rule.name} has "action": "notify": it never scores or bans, so it has no ${k.setting}` };
    const result: SettingResult = {
      key: req.key,
      rule: rule.name,
      setting: k.setting,
      value: rule[k.setting],
      runtime: d.runtimeSettings.get(rule.name)?.[k.setting] !== undefined,
      shared: rule.pool === '',
      ...(previous !== undefined ? { previous, changes } : {}),
    };
    return { ok: true, result };
  }

  /** SIGUSR1: the record table, one line per record, and bans without a record. */
  recordTable(log: Logger): void {
    const d = this.d;
    const now = Date.now();
    const left = (a: string) => Math.max(0, Math.ceil((Math.max(0, ...d.ledger.allOf(a).map((b) => b.expiry)) - now) / 1000));
    log.info(`record table: ${d.scoring.size} records, ${d.ledger.size} active bans`);
    const recorded = new Set<string>();
    for (const r of d.scoring.records()) {
      recorded.add(r.address);
      log.info('record', {
        address: r.address,
        ...(r.pool ? { pool: r.pool } : {}),
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
      if (!recorded.has(b.address)) log.info('ban without record', { address: b.address, ban_left: String(left(b.address)), pattern: b.pattern ?? '', origin: b.origin, ...(b.rule ? { rule: b.rule } : {}) });
    }
  }
}
