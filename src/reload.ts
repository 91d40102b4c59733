// Changing what a running daemon runs: a reload (SIGHUP, `tallow reload`) reads the files again,
// all or nothing; `tallow set RULE.KEY VALUE` changes one rule until the next reload or restart.
// Either way the new engine is applied the same way: rule changes logged, scores and steps
// reconfigured, the sets of new scopes made, the journal filter renewed when it changed.
import { ACTION_RESTART_KEYS } from './actions/settings';
import type { ReloadResult } from './control-results';
import { loadEngine, makeEngine, type Engine } from './engine';
import { logEngine } from './engine-log';
import { backendModule, type Firewall } from './firewall';
import { FLEET_RESTART_KEYS } from './fleet/settings';
import { HISTORY_RESTART_KEYS } from './history/settings';
import type { HistoryListener } from './listeners/history';
import type { Ledger } from './ledger';
import { errText } from './limits';
import type { Log } from './log';
import { Metrics } from './metrics';
import type { PatternFile } from './patterns';
import type { Reader } from './reader';
import { stepOptions, type BanSteps } from './recidive';
import type { Rule } from './rule';
import { defaultRuleName, ruleChanges } from './rules';
import { settingKeys, withSettings, type RuntimeSettings, type Settable } from './runtime-settings';
import type { Scope } from './scope';
import { scopesOf, type Scoring, type ScoringOptions } from './scoring';

/** Settings every backend reads only at start; each backend adds its own (BackendModule.restartKeys). */
const RESTART_KEYS = ['backend', 'ipv6', 'nocreate', 'maxelem', 'stateDir', 'socket', 'metricsListen', 'metricsTextfile'] as const;

/** What a reload changes in the daemon (the Daemon itself). */
export interface ReloadTarget {
  engine: Engine;
  readonly scoring: Scoring;
  readonly steps: BanSteps;
  readonly firewall: Firewall;
  readonly reader: Reader;
  readonly ledger: Ledger;
  readonly log: Log;
  readonly metrics: Metrics;
  /** the history listener, whose store the repeat-offender views are read from */
  readonly history: Pick<HistoryListener, 'readSteps'> | null;
  scopes(rules?: Rule[]): Map<string, Scope>;
}

export interface ReloadFiles {
  configFile: string;
  explicitConfig: boolean;
  shippedPatterns?: string;
}

export class Reloads {
  /** The pattern files as read (before `tallow set`), and what `tallow set` changed in them. */
  private loadedFiles: PatternFile[];
  private settings: RuntimeSettings = new Map();

  constructor(
    private readonly d: ReloadTarget,
    private readonly files: ReloadFiles,
    private readonly scoringOptions: (e: Engine) => ScoringOptions,
  ) {
    this.loadedFiles = d.engine.files;
  }

  /** The reload, and what it changed; a configuration with an error changes nothing. */
  reload(opts: { keepSettings?: boolean } = {}): ReloadResult | { error: string } {
    const d = this.d;
    let next: Engine;
    try {
      next = loadEngine(this.files.configFile, this.files.explicitConfig, this.files.shippedPatterns, d.metrics);
    } catch (e) {
      d.log.error(`reload refused, still running the previous configuration: ${errText(e)}`, undefined, 'config_error');
      return { error: errText(e) };
    }
    this.loadedFiles = next.files;
    // A reload asked for is the files' truth again: what `tallow set` changed goes. One made on the
    // way (`tallow allow add` writing its drop-in) keeps those values while the rules still take them.
    let dropped = settingKeys(this.settings);
    if (opts.keepSettings && this.settings.size) {
      try {
        next = makeEngine(next.config, withSettings(next.files, this.settings, (f) => f.keys.name ?? defaultRuleName(f)), d.metrics);
        dropped = [];
      } catch (e) {
        d.log.warn(`settings made with tallow set no longer apply to the files read again (${errText(e)})`);
      }
    }
    if (dropped.length) this.settings.clear();
    const old = d.engine.config;
    const keys = [...RESTART_KEYS, ...HISTORY_RESTART_KEYS, ...ACTION_RESTART_KEYS, ...FLEET_RESTART_KEYS, ...(backendModule(d.firewall.backend.name)?.restartKeys ?? [])];
    const restartOnly = keys.filter((k) => JSON.stringify(old[k]) !== JSON.stringify(next.config[k]));
    const changes = this.apply(next);
    d.log.info(`configuration reloaded: allowlist ${next.allowlist.size} entries`, {
      config: next.config.file ?? 'none (built-in defaults)',
      threshold: String(next.config.threshold),
      expires: String(next.config.expires),
      ...(next.config.dropins?.length ? { dropins: next.config.dropins.join(',') } : {}),
    }, 'reload');
    for (const line of changes) d.log.info(line);
    if (dropped.length) d.log.info(`settings made with tallow set dropped by the reload: ${dropped.join(', ')}`);
    if (restartOnly.length) d.log.warn(`changed settings that take effect only after a restart: ${restartOnly.map(confKey).join(', ')}`);
    return { config: next.config.file, changes, restart: restartOnly.map(confKey), dropped };
  }

  /** Runs `next` from now on (a reload, `tallow set`): the rule changes, as log lines. */
  private apply(next: Engine): string[] {
    const d = this.d;
    const journalChanged = JSON.stringify([d.engine.matches, d.engine.fields]) !== JSON.stringify([next.matches, next.fields]);
    const before = d.engine.rules;
    const after = next.rules;
    d.scopes(before);
    // Counted before the swap: a rule removed or disabled keeps its bans, and the log says how many.
    const active = new Map<string, number>();
    for (const b of d.ledger.values()) if (b.rule !== null) Metrics.bump(active, b.rule);
    const rulesChanged = ruleChanges(before, after, (r) => active.get(r.name) ?? 0);
    const counted = { window: d.steps.window, recidive: d.engine.config.recidiveBans > 0 };
    d.engine = next;
    // Later matches score by the new rules; records of rules still there are kept.
    d.scoring.configure(after, this.scoringOptions(next));
    d.steps.configure(stepOptions(next.config), after);
    // The repeat-offender views hold only what the old settings needed: read the history again
    // when they now look further back, or the recidive rule was just turned on.
    if (d.history && (d.steps.window > counted.window || (next.config.recidiveBans > 0 && !counted.recidive))) this.recounting = this.recount(d.history);
    // Scopes a new rule bans in: their sets and rules are made now, not at the first ban.
    d.firewall.setScopes(scopesOf(after)).catch((e) => d.log.error(`firewall: the sets and rules of the reloaded rules' ports could not be made: ${errText(e)}`));
    logEngine(d.log, next);
    if (journalChanged) d.reader.refilter();
    return rulesChanged;
  }

  /**
   * `tallow set RULE.KEY VALUE`: as if every block of the rule gave that key, until the next
   * reload or restart. A value the rule cannot take is refused and nothing changes.
   */
  set(rule: string, setting: Settable, value: number): { changes: string[]; previous: number } | { error: string } {
    const d = this.d;
    const r = d.engine.rules.find((x) => x.name === rule);
    if (!r) return { error: `no rule named ${JSON.stringify(rule)} (rules: ${d.engine.rules.map((x) => x.name).join(', ')})` };
    if (r.action === 'notify') return { error: `rule ${rule} has "action": "notify": it never scores or bans, so it has no ${setting}` };
    const settings: RuntimeSettings = new Map([...this.settings].map(([k, v]) => [k, { ...v }]));
    settings.set(rule, { ...settings.get(rule), [setting]: value });
    let next: Engine;
    try {
      next = makeEngine(d.engine.config, withSettings(this.loadedFiles, settings, (f) => f.keys.name ?? defaultRuleName(f)), d.metrics);
    } catch (e) {
      return { error: errText(e) };
    }
    this.settings = settings;
    const changes = this.apply(next);
    d.log.info(`tallow set ${rule}.${setting} ${value} (until the next reload or restart)`);
    for (const line of changes) d.log.info(line);
    return { changes, previous: r[setting] };
  }

  /** The history read again after a reload (tests wait for it; the daemon does not). */
  recounting: Promise<void> | null = null;

  private async recount(history: Pick<HistoryListener, 'readSteps'>): Promise<void> {
    const d = this.d;
    const since = Date.now() - d.steps.window * 1000;
    try {
      // As at start (daemon.ts); both merge with what the views hold (the later ban wins; one ban is counted once).
      await history.readSteps(
        since,
        (bans) => d.steps.load(bans, Date.now()),
        d.engine.config.recidiveBans > 0 ? (bans) => d.steps.loadRecent(bans, Date.now()) : undefined,
      );
      d.log.info(`repeat offenders: bans since ${new Date(since).toISOString()} counted again from the history after the reload`);
    } catch (e) {
      d.log.warn(`repeat offenders: the history could not be read again after the reload (${errText(e)}); counts go on from the bans seen so far`);
    }
  }

  /** The settings made with `tallow set` that run now. */
  get runtimeSettings(): RuntimeSettings {
    return this.settings;
  }
}

/** `stateDir` -> `state_dir`, as the administrator wrote it in tallow.conf. */
function confKey(k: string): string {
  return k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}
