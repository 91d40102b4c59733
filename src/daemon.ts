// The daemon: wiring only. It builds the engine (config, patterns, allowlist, matcher), the
// scores (one pool per rule with its own policy), the ledger of bans and the listeners, then
// moves data one way:
//   Journal.batches() -> Matcher.match -> Scoring.observe (the match's rule) -> Ledger.ban -> events -> listeners
//   (firewall, log, state, metrics)
// and keeps time (prune, expiry, watchdog) and answers signals. Decisions are made in the stages;
// the control socket's requests are answered in requests.ts. The listeners are assembled in
// wiring.ts, the saved and kernel bans restored in restore.ts, reloads and `tallow set` applied
// in reload.ts.
import { ControlServer, type ControlResponse } from './control';
import { validateRequest } from './control-requests';
import type { ReloadResult } from './control-results';
import { loadEngine, type Engine } from './engine';
import { errText } from './limits';
import { logEngine } from './engine-log';
import { Dispatcher, type Listener } from './events';
import { chooseBackend, Firewall } from './firewall';
import type { JournalEntry } from './journal';
import { Ledger } from './ledger';
import type { StateListener } from './listeners/state';
import type { Log } from './log';
import { Metrics } from './metrics';
import type { Fleet } from './fleet';
import type { HistoryListener } from './listeners/history';
import { BanClock, BanSteps, stepOptions } from './recidive';
import { MetricsExport } from './metrics-export';
import type { RuntimeSettings, Settable } from './runtime-settings';
import { notifyEvent } from './notify';
import { Reader } from './reader';
import { Reloads } from './reload';
import { adoptKernelBans, loadState, restoreState } from './restore';
import { Requests } from './requests';
import { NeverBan } from './never-ban';
import * as systemd from './systemd';
import type { Rule } from './rule';
import { MANUAL_NETWORKS, type Scope } from './scope';
import { Scoring, scopesOf, type ScoringOptions } from './scoring';
import { isNetwork, networkRefusal, overlaps, parseNetwork, type Network } from './target';
import { version } from './version';
import { daemonGauges, wireListeners } from './wiring';

export { version };

export interface DaemonOptions {
  configFile: string;
  /** --config given: a missing file is an error (otherwise: built-in defaults). */
  explicitConfig: boolean;
  journalDir?: string;
  dryRun: boolean;
  log: Log;
  /** Directory of the shipped patterns (default: patterns/ beside the program). */
  shippedPatterns?: string;
  /** Extra listeners after the built-in ones (tests; later: actions, history, fleet). */
  listeners?: Listener[];
}

const STATUS_EVERY_MS = 10_000;

export class Daemon {
  readonly started = Date.now();
  readonly metrics = new Metrics();
  readonly ledger: Ledger;
  /** Records and scores, one pool per rule with a policy of its own (scoring.ts). */
  readonly scoring: Scoring;
  /** Unspecified, loopback, multicast, broadcast and the host's own addresses: never banned. */
  readonly neverBan = new NeverBan();
  engine: Engine;
  firewall!: Firewall;
  readonly reader: Reader;
  events!: Dispatcher;
  state: StateListener | null = null;
  history: HistoryListener | null = null;
  /** Bans shared with other servers (fleet=, src/fleet/). */
  fleet: Fleet | null = null;
  /** Repeat offenders: the step between the tracker's decision and the ledger (recidive.ts). */
  readonly steps: BanSteps;
  private readonly banClock = new BanClock();
  readonly log: Log;
  private control: ControlServer | null = null;
  private exporter: MetricsExport | null = null;
  private reportTimer: { close(): void } | null = null;
  private timers: NodeJS.Timeout[] = [];
  private stopping = false;
  private loop: Promise<void> | null = null;
  private readonly requests: Requests;
  private readonly knownScopes = new Map<string, Scope>();
  private readonly reloads: Reloads;

  private constructor(private readonly opts: DaemonOptions) {
    this.log = opts.log;
    this.engine = loadEngine(opts.configFile, opts.explicitConfig, opts.shippedPatterns, this.metrics);
    this.ledger = new Ledger({
      emit: (e) => this.events.emit(e),
      // Whoever asks (a log line, the socket, the state file, the kernel's sets, a remote node).
      refuse: (address, family) => {
        const why = isNetwork(address) ? this.networkRefusal(address) : this.neverBan.has(address, family);
        if (why) Metrics.bump(this.metrics.bansRefused, why);
        return why;
      },
    });
    this.scoring = new Scoring(this.scoringOptions(this.engine), this.engine.rules);
    this.steps = new BanSteps(stepOptions(this.engine.config), this.engine.rules);
    this.reloads = new Reloads(this, opts, (e) => this.scoringOptions(e));
    this.requests = new Requests(this);
    this.reader = new Reader({ directory: opts.journalDir, log: this.log, filter: () => this.engine });
  }

  /**
   * Start-up: config and patterns (ConfigError/PatternError), state, journal, firewall
   * (FirewallError), listeners, control socket; READY=1 once the journal position is taken.
   */
  static async start(opts: DaemonOptions): Promise<Daemon> {
    const d = new Daemon(opts);
    await d.init();
    return d;
  }

  private async init(): Promise<void> {
    const { config, allowlist } = this.engine;
    const log = this.log;
    log.info(`tallow ${version()} starting`, { config: config.file ?? 'none (built-in defaults)', dry_run: String(this.opts.dryRun) }, 'start');
    if (config.dropins?.length) log.info(`drop-ins: ${config.dropins.join(', ')}`);
    logEngine(this.log, this.engine);
    log.info(`allowlist: ${allowlist.size} entries`, { threshold: String(config.threshold), expires: String(config.expires) });

    // State: a dry run neither reads nor writes it (it must not change what a real run resumes).
    const { state, store } = this.opts.dryRun ? { state: null, store: null } : loadState(config, log);

    // The journal before the firewall: a bad --journal-dir must not leave sets behind for nothing.
    this.reader.open(state?.cursor ? { at: 'cursor', cursor: state.cursor } : { at: 'tail' });

    // Sets and rules for every scope the rules ban in, made at start like tallow's own; and the
    // every-port sets for networks, when the state file holds networks banned by hand, or when
    // the fleet may send networks no rule here bans (fleet/index.ts).
    const scopes = scopesOf(this.engine.rules);
    const fleetNets = config.fleet !== 'off' && config.fleetAccept !== false && !this.opts.dryRun;
    if ((fleetNets || state?.bans.some((b) => b.scope === MANUAL_NETWORKS.id)) && !scopes.some((s) => s.id === MANUAL_NETWORKS.id)) {
      scopes.push(MANUAL_NETWORKS);
      this.knownScopes.set(MANUAL_NETWORKS.id, MANUAL_NETWORKS);
    }
    const backend = await chooseBackend(config, log, this.opts.dryRun, scopes);
    this.firewall = new Firewall(backend, log, {
      held: () => this.ledger.values(),
      metrics: this.metrics,
      // An element the kernel refuses was dropped (and named) by the queue: the ledger forgets it
      // too, so `tallow list` and the state file show only what the kernel can hold.
      onRefused: (address, _family, _reason, scope) => {
        this.metrics.firewallRefused++;
        this.ledger.unban(address, 'refused', Date.now(), scope);
      },
    });
    await this.firewall.start();

    const wired = wireListeners(this, {
      config,
      store,
      cursor: state?.cursor ?? null,
      source: { cursor: () => this.reader.cursor, scoring: this.scoring, ledger: this.ledger },
      dryRun: this.opts.dryRun,
      extra: this.opts.listeners ?? [],
    });
    this.state = wired.state;
    this.history = wired.history;
    this.fleet = wired.fleet;
    this.events = new Dispatcher(wired.listeners, log);
    this.metrics.gauges = daemonGauges(this);

    // Before the first ban is decided: the repeat-offender steps the history remembers.
    await this.history?.start(
      Date.now() - this.steps.window * 1000,
      (bans) => this.steps.load(bans, Date.now()),
      config.recidiveBans > 0 ? (bans) => this.steps.loadRecent(bans, Date.now()) : undefined,
    );
    if (state) restoreState(this, state);
    await adoptKernelBans(this);
    this.fleet?.start();

    if (!this.opts.dryRun) {
      try {
        this.control = await ControlServer.listen(config.socket, (req) => this.requests.handle(req));
        log.info('control socket listening', { socket: config.socket });
      } catch (e) {
        // The daemon still bans without it; `tallow status` will say it cannot connect.
        log.error(`control socket not available: ${errText(e)}`, { socket: config.socket });
      }
    }
    this.exporter = await MetricsExport.start(config, this.metrics, log);
    // The daily report mail (report/timer.ts), loaded only when a mail action has a report time.
    if (!this.opts.dryRun && (config.actionDefs ?? []).some((a) => a.kind === 'mail' && a.report !== null)) {
      const { ReportTimer } = require('./report/timer') as typeof import('./report/timer');
      const timer = new ReportTimer(config, log);
      timer.start();
      this.reportTimer = timer;
    }

    log.info(`journal: ${this.opts.journalDir ? `directory ${this.opts.journalDir}` : 'local system journal'}, starting at ${this.reader.position}`);
    log.debug('journal matches', { matches: this.engine.matches.map((g) => g.join('+')).join(' | '), fields: this.engine.fields.join(',') });
    this.neverBan.start();
    this.startTimers();
    notify(`READY=1\nSTATUS=${this.statusLine()}`);
    this.loop = this.reader.run((batch) => this.process(batch));
  }

  /** What the scores need from an engine: its policy, its allowlist, the ledger's bans. */
  private scoringOptions(e: Engine): ScoringOptions {
    const allow = e.allowlist;
    return {
      threshold: e.config.threshold,
      expires: e.config.expires,
      maxRecords: e.config.maxRecords,
      isAllowed: (address, family) => allow.has(address, family),
      coversAllowed: (net: Network) => allow.has(net.base, net.family) || allow.entries.some((a) => overlaps(net, { base: a.address, family: a.family, prefix: a.prefix })),
      bannedUntil: (target, scope) => this.ledger.expiryOf(target, scope),
    };
  }

  /** A network no one may ban: it holds loopback, the unspecified address, the host's own... */
  private networkRefusal(target: string): string | null {
    const net = parseNetwork(target);
    return net ? networkRefusal(net, this.neverBan) : 'not an address or a network';
  }

  /**
   * Every scope banned in since start: those of these rules (by default, the running ones) and of
   * rules a reload removed, whose bans still run (their ports are still named, their sets cleared
   * on `tallow unban`).
   */
  scopes(rules: Rule[] = this.engine.rules): Map<string, Scope> {
    for (const s of scopesOf(rules)) this.knownScopes.set(s.id, s);
    return this.knownScopes;
  }

  /** One batch of entries: match, score, decide; then prune and expire. */
  process(batch: JournalEntry[]): void {
    const now = Date.now();
    const oldest = (now - this.engine.config.expires * 1000) * 1000; // usec
    const { matcher } = this.engine;
    const m = this.metrics;
    for (const entry of batch) {
      m.entriesRead++;
      // Catching up after a restart: what is older than `expires` would be pruned at once anyway.
      if (entry.realtime < oldest) {
        m.entriesTooOld++;
        continue;
      }
      const match = matcher.match(entry);
      if (!match) continue;
      if (match.rule.action === 'notify') {
        // A login alert (notify.ts): to the listeners only, never to the scores or the ledger.
        const n = notifyEvent(match, Math.floor(entry.realtime / 1000), this.engine.allowlist);
        if (n) this.events.emit(n);
        continue;
      }
      const { rule } = match;
      Metrics.bump(m.matchesByRule, rule.name);
      this.events.emit({ kind: 'match', address: match.address, family: match.family, pattern: match.pattern.name, file: match.file, rule: rule.name, ...(rule.noLog ? { noLog: true } : {}), at: now });
      if (this.log.verbose) this.log.debug('match', { address: match.address, pattern: match.pattern.name, rule: rule.name });
      for (const d of this.scoring.observe(match, rule, now)) {
        if (d.action !== 'ban') continue;
        const out = this.ledger.ban({ ...this.steps.apply(d, now), origin: 'rule' }, this.banClock.at(d.address, now));
        if (!out.ok && this.ledger.refusal(d.address, d.family)) this.log.warn(`not banned, never banned: ${d.address} (${out.why})`, { pattern: d.pattern });
        // The recidive rule: the Nth ban within recidive_window adds one on every port.
        const r = out.ok ? this.steps.recidive(out.ban, now, this.ledger.get(out.ban.address, '')) : null;
        if (r) this.ledger.ban(r, this.banClock.at(r.address, now));
      }
    }
    if (batch.length) m.journalLagSeconds = Math.max(0, now / 1000 - batch[batch.length - 1].realtime / 1e6);
    this.tick(now);
  }

  /** Records past their time are dropped; bans past theirs end (one `expired` event each). */
  private tick(now: number): void {
    const evicted = this.scoring.evicted;
    if (this.scoring.prune(now) > 0 || evicted !== this.metrics.recordsEvicted) this.state?.changed();
    this.metrics.recordsEvicted = evicted;
    this.ledger.expire(now);
    if (!this.stopping) this.state?.cursorMoved(this.reader.cursor, now);
  }

  private startTimers(): void {
    const expires = this.engine.config.expires;
    const pruneMs = Math.min(30_000, Math.max(1000, (expires * 1000) / 20));
    this.timers.push(setInterval(() => this.tick(Date.now()), pruneMs));
    this.timers.push(setInterval(() => notify(`STATUS=${this.statusLine()}`), STATUS_EVERY_MS));
    let usec = 0;
    try {
      usec = systemd.watchdogUsec();
    } catch {
      usec = 0;
    }
    if (usec > 0) {
      const every = Math.max(100, Math.floor(usec / 2000));
      this.timers.push(setInterval(() => notify('WATCHDOG=1'), every));
      this.log.info(`watchdog: pinging every ${every} ms`);
    }
  }

  private statusLine(): string {
    const m = this.metrics;
    const bans = [...m.bansByReason.values()].reduce((a, b) => a + b, 0);
    const matches = [...m.matchesByFile.values()].reduce((a, b) => a + b, 0);
    return `${m.entriesRead} entries, ${matches} matches, ${bans} bans (${this.ledger.size} active), ${this.scoring.size} records`;
  }

  get dryRun(): boolean {
    return this.opts.dryRun;
  }

  /** The configuration file named at start (its drop-ins sit in `<file>.d`), and whether --config named it. */
  get configFile(): string {
    return this.opts.configFile;
  }
  get explicitConfig(): boolean {
    return this.opts.explicitConfig;
  }

  // ---- control socket (requests.ts) ----
  status() {
    return this.requests.status();
  }
  list() {
    return this.requests.list();
  }
  rules(name?: string) {
    return this.requests.rules(name);
  }
  /** A request from elsewhere than the socket (which validates on its own): checked here first. */
  async handle(req: unknown): Promise<ControlResponse> {
    const v = validateRequest(req);
    return 'error' in v ? { ok: false, error: v.error } : this.requests.handle(v.req);
  }

  // ---- signals ----

  /** SIGHUP: a new config and patterns, all or nothing; records and bans are kept. */
  reload(opts: { keepSettings?: boolean } = {}): boolean {
    return !('error' in this.reloads.reload(opts));
  }

  /** Called after each SIGHUP or `tallow reload` (service.ts: start-up's pages again). */
  afterReload: (() => void) | null = null;

  /** SIGHUP and `tallow reload`: systemd is told (RELOADING=1, then READY=1). */
  reloadService(source: string): ReloadResult | { error: string } {
    this.log.info(`${source}: reloading configuration and patterns`);
    // MONOTONIC_USEC: newer systemd wants it with RELOADING=1 (uv's hrtime is CLOCK_MONOTONIC).
    notify(`RELOADING=1\nMONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`);
    try {
      return this.reloadReport();
    } finally {
      notify('READY=1');
      this.afterReload?.();
    }
  }

  /** The reload, and what it changed; a configuration with an error changes nothing (reload.ts). */
  reloadReport(): ReloadResult | { error: string } {
    return this.reloads.reload();
  }

  /** `tallow set RULE.KEY VALUE` until the next reload or restart (reload.ts). */
  set(rule: string, setting: Settable, value: number): { changes: string[]; previous: number } | { error: string } {
    return this.reloads.set(rule, setting, value);
  }

  /** The settings made with `tallow set` that run now. */
  get runtimeSettings(): RuntimeSettings {
    return this.reloads.runtimeSettings;
  }

  /** SIGUSR1: the record table (requests.ts). */
  dump(): void {
    this.requests.recordTable(this.log);
  }

  /** SIGTERM/SIGINT: stop reading, deliver what is queued, save, close. Bans stay in the kernel. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    notify('STOPPING=1');
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    this.reader.close();
    if (this.loop) await this.loop.catch(() => {});
    if (this.control) await this.control.close().catch(() => {});
    await this.exporter?.close();
    this.reportTimer?.close();
    await this.events.flush();
    await this.fleet?.close();
    await this.events.close();
    this.neverBan.close();
    this.log.info('stopped; bans stay in the firewall until their timeouts', { active: String(this.ledger.size) }, 'stop');
  }
}

export function notify(state: string): void {
  try {
    systemd.notify(state);
  } catch {
    /* not under systemd, or the addon refused: nothing to tell */
  }
}

