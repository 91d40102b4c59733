// The daemon: wires the stages together, one way only:
//   Journal.batches() -> Matcher.match -> Tracker.observe -> decisions -> Firewall.ban (one batch)
//   -> log lines -> state (throttled).
// Everything that decides lives in the stages; this file only moves data, keeps time (prune,
// unban log, state save, watchdog) and answers signals and control requests.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseAddress, type Family } from './address';
import { Allowlist } from './allowlist';
import { loadConfig, ConfigError, type Config } from './config';
import { ControlServer, type ControlRequest, type ControlResponse, type ListItem, type StatusResult } from './control';
import { chooseBackend, Firewall } from './firewall';
import { Journal, type JournalEntry, type MatchGroup, type StartPosition } from './journal';
import type { Log } from './log';
import { Matcher } from './matcher';
import { journalMatches, loadPatternFiles, neededFields, shippedPatternsDir, untrustedFilters, type PatternFile } from './patterns';
import { activeBans, liveRecords, StateSaver, StateStore, type State } from './state';
import * as systemd from './systemd';
import { Tracker, type Decision, type TrackerOptions } from './tracker';

export interface DaemonOptions {
  configFile: string;
  /** --config given: a missing file is an error (otherwise: built-in defaults). */
  explicitConfig: boolean;
  journalDir?: string;
  dryRun: boolean;
  log: Log;
  /** Directory of the shipped patterns (default: patterns/ beside the program). */
  shippedPatterns?: string;
}

/** The engine built from one configuration: replaced as a whole on a successful SIGHUP. */
interface Engine {
  config: Config;
  files: PatternFile[];
  allowlist: Allowlist;
  matcher: Matcher;
  matches: MatchGroup[];
  fields: string[];
}

/** What the daemon believes is banned, for the unban log line, `list` and the state file. */
interface ActiveBan {
  family: Family;
  expiry: number;
  pattern: string | null;
  score: number;
  count: number;
}

const SAVE_EVERY_MS = 2000;
const STATUS_EVERY_MS = 10_000;
/** Even when nothing matched, the advancing cursor is saved this often (a restart skips what was read). */
const CURSOR_SAVE_EVERY_MS = 60_000;

export function version(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(path.join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Config, patterns and allowlist, all or nothing; throws ConfigError/PatternError. */
function buildEngine(opts: DaemonOptions): Engine {
  const config = loadConfig(opts.configFile, opts.explicitConfig);
  const files = loadPatternFiles(opts.shippedPatterns ?? shippedPatternsDir(), config.patternsDir);
  let allowlist: Allowlist;
  try {
    allowlist = new Allowlist(config.whitelist);
  } catch (e) {
    throw new ConfigError(`${config.file ?? 'built-in defaults'}: whitelist: ${errText(e)}`);
  }
  return {
    config,
    files,
    allowlist,
    matcher: new Matcher(files),
    matches: journalMatches(files),
    fields: neededFields(files),
  };
}

function trackerOptions(e: Engine): TrackerOptions {
  const allow = e.allowlist;
  return {
    threshold: e.config.threshold,
    expires: e.config.expires,
    maxRecords: e.config.maxRecords,
    isAllowed: (address, family) => allow.has(address, family),
  };
}

export class Daemon {
  readonly started = Date.now();
  private engine: Engine;
  private readonly log: Log;
  private readonly opts: DaemonOptions;
  private tracker: Tracker;
  private firewall!: Firewall;
  private journal!: Journal;
  private store: StateStore | null = null;
  private saver: StateSaver | null = null;
  private control: ControlServer | null = null;
  private readonly bans = new Map<string, ActiveBan>();
  /** Earliest expiry in `bans` (may be early after a removal: that only costs one walk). */
  private nextExpiry = Infinity;
  private readonly counters = { entries: 0, skipped: 0, matches: 0, bans: 0, unbans: 0 };
  private timers: NodeJS.Timeout[] = [];
  private stopping = false;
  private reopenJournal = false;
  private dirty = false;
  private lastSave: number | null = null;
  private lastCursorSave = 0;
  private savedCursor: string | null = null;
  private position = 'tail';
  private loop: Promise<void> | null = null;

  private constructor(opts: DaemonOptions, engine: Engine) {
    this.opts = opts;
    this.log = opts.log;
    this.engine = engine;
    this.tracker = new Tracker(trackerOptions(engine));
  }

  /**
   * Start-up: config and patterns (ConfigError/PatternError), state, journal, firewall
   * (FirewallError), control socket; READY=1 once the journal is open and the firewall set up.
   */
  static async start(opts: DaemonOptions): Promise<Daemon> {
    const d = new Daemon(opts, buildEngine(opts));
    await d.init();
    return d;
  }

  private async init(): Promise<void> {
    const { config, files, allowlist } = this.engine;
    const log = this.log;
    log.info(`tallow ${version()} starting`, { config: config.file ?? 'none (built-in defaults)', dry_run: String(this.opts.dryRun) });
    for (const f of files) log.info(`patterns ${f.name}: ${f.patterns.length} loaded`, { path: f.path });
    for (const w of untrustedFilters(files)) log.warn(w);
    log.info(`allowlist: ${allowlist.size} entries`, { threshold: String(config.threshold), expires: String(config.expires) });

    // State: a dry run neither reads nor writes it (it must not change what a real run resumes).
    let state: State | null = null;
    if (!this.opts.dryRun) {
      this.store = new StateStore(config.stateDir);
      try {
        fs.mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
        const loaded = this.store.load();
        if (loaded.problem) log.warn(`state file problem: ${loaded.problem}; starting without saved state`, { file: this.store.file });
        state = loaded.state;
      } catch (e) {
        log.warn(`state file unreadable: ${errText(e)}; starting without saved state`, { file: this.store.file });
      }
    }

    // The journal before the firewall: a bad --journal-dir must not leave sets behind for nothing.
    this.openJournal(state?.cursor ? { at: 'cursor', cursor: state.cursor } : { at: 'tail' });
    this.savedCursor = state?.cursor ?? null;

    const backend = await chooseBackend(config, log, this.opts.dryRun);
    this.firewall = new Firewall(backend, log);
    await this.firewall.start();

    if (state) this.restore(state);
    await this.adoptKernelBans();
    if (this.store) {
      this.saver = new StateSaver(this.store, () => this.snapshot(), SAVE_EVERY_MS, (msg) => this.log.error(`saving state failed: ${msg}`));
    }

    if (!this.opts.dryRun) {
      try {
        this.control = await ControlServer.listen(config.socket, (req) => this.handle(req));
        log.info('control socket listening', { socket: config.socket });
      } catch (e) {
        // The daemon still bans without it; `tallow status` will say it cannot connect.
        log.error(`control socket not available: ${errText(e)}`, { socket: config.socket });
      }
    }

    log.info(`journal: ${this.opts.journalDir ? `directory ${this.opts.journalDir}` : 'local system journal'}, starting at ${this.position}`);
    log.debug('journal matches', { matches: this.engine.matches.map((g) => g.join('+')).join(' | '), fields: this.engine.fields.join(',') });
    this.startTimers();
    notify(`READY=1\nSTATUS=${this.statusLine()}`);
    this.loop = this.run();
  }

  private openJournal(position: StartPosition): void {
    const e = this.engine;
    this.journal = Journal.open({ directory: this.opts.journalDir, fields: e.fields, matches: e.matches });
    if (position.at === 'cursor') {
      try {
        this.journal.seek(position);
        this.position = `saved cursor ${position.cursor}`;
        return;
      } catch (err) {
        this.log.warn(`saved journal cursor not usable (${errText(err)}); starting at the tail`);
      }
    }
    this.journal.seek({ at: 'tail' });
    this.position = 'tail';
  }

  private restore(state: State): void {
    const now = Date.now();
    let records = 0;
    for (const r of liveRecords(state, now, this.engine.config.expires)) {
      try {
        this.tracker.restore(r);
        records++;
      } catch (e) {
        this.log.warn(`state: record not restored: ${errText(e)}`, { address: String(r?.address) });
      }
    }
    const again = [];
    for (const b of activeBans(state, now)) {
      const p = parseAddress(b.address);
      if (!p) continue;
      const rec = this.tracker.get(p.address);
      this.setBan(p.address, { family: p.family, expiry: now + b.seconds * 1000, pattern: b.pattern, score: rec?.score ?? 0, count: rec?.count ?? 0 });
      again.push({ address: p.address, family: p.family, seconds: b.seconds });
    }
    if (again.length) this.firewall.ban(again);
    this.log.info(`state restored: ${records} records, ${again.length} active bans put back with their remaining time`, {
      file: this.store?.file ?? '',
      saved: new Date(state.saved).toISOString(),
    });
  }

  /**
   * Bans in our kernel sets that the state file does not know: made after the last save before a
   * crash, or added by hand. They are adopted with the time the kernel has left on them, so `list`
   * shows them and a set lost later is re-filled with them too.
   */
  private async adoptKernelBans(): Promise<void> {
    let kernel;
    try {
      kernel = await this.firewall.list();
    } catch (e) {
      this.log.warn(`could not read the bans already in the kernel: ${errText(e)}`);
      return;
    }
    const now = Date.now();
    const adopted = [];
    for (const k of kernel) {
      // An entry without a timeout (remaining Infinity) was put there by someone else, for good.
      if (this.bans.has(k.address) || !Number.isFinite(k.remaining) || k.remaining <= 0) continue;
      const rec = this.tracker.get(k.address);
      this.setBan(k.address, { family: k.family, expiry: now + k.remaining * 1000, pattern: rec?.pattern ?? null, score: rec?.score ?? 0, count: rec?.count ?? 0 });
      adopted.push({ address: k.address, family: k.family, seconds: k.remaining });
    }
    if (adopted.length === 0) return;
    // Re-adding with the same remaining time changes nothing in the kernel but puts them in the
    // firewall queue's own list of active bans (the one it re-fills from).
    this.firewall.ban(adopted);
    this.log.info(`firewall: ${adopted.length} bans found in the kernel adopted with their remaining time`);
  }

  /** The pipeline. Ends when stop() closes the journal; reopens it after a reload changed matches. */
  private async run(): Promise<void> {
    for (;;) {
      try {
        for await (const batch of this.journal.batches()) {
          if (this.stopping) break;
          this.process(batch);
        }
      } catch (e) {
        if (this.stopping) return;
        // A journal error is not something a restart of the loop can fix in a tight loop: log, wait, reopen.
        this.log.error(`journal read failed: ${errText(e)}; reopening in 5 s`);
        await new Promise((r) => setTimeout(r, 5000));
        this.reopenJournal = true;
      }
      if (this.stopping) return;
      if (!this.reopenJournal) return;
      this.reopenJournal = false;
      const cursor = this.journal.cursor;
      try {
        this.journal.close();
      } catch {
        /* already closed */
      }
      this.openJournal(cursor ? { at: 'cursor', cursor } : { at: 'tail' });
      this.log.info(`journal reopened at ${this.position}`);
    }
  }

  /** One batch of entries: match, score, ban (one firewall batch), log, prune, schedule a save. */
  process(batch: JournalEntry[]): void {
    const now = Date.now();
    const oldest = (now - this.engine.config.expires * 1000) * 1000; // usec
    const { matcher } = this.engine;
    const decisions: Decision[] = [];
    for (const entry of batch) {
      this.counters.entries++;
      // Catching up after a restart: what is older than `expires` would be pruned at once anyway.
      if (entry.realtime < oldest) {
        this.counters.skipped++;
        continue;
      }
      const m = matcher.match(entry);
      if (!m) continue;
      this.counters.matches++;
      this.dirty = true;
      if (this.log.verbose) this.log.debug('match', { address: m.address, pattern: m.pattern.name });
      for (const d of this.tracker.observe(m, now)) decisions.push(d);
    }
    this.apply(decisions, now);
    this.prune(now);
    this.scheduleSave();
  }

  /** Decisions -> one firewall batch and one log line each. A ban never shortens a longer one. */
  private apply(decisions: Decision[], now: number): void {
    const add: { address: string; family: Family; seconds: number }[] = [];
    const remove: { address: string; family: Family }[] = [];
    for (const d of decisions) {
      if (d.action === 'ban') {
        const expiry = now + d.seconds * 1000;
        const had = this.bans.get(d.address);
        if (had && had.expiry >= expiry) continue;
        this.setBan(d.address, { family: d.family, expiry, pattern: d.pattern, score: d.score, count: d.count });
        add.push({ address: d.address, family: d.family, seconds: d.seconds });
        this.counters.bans++;
        this.log.action('ban', {
          address: d.address,
          seconds: String(d.seconds),
          score: fmtScore(d.score),
          count: String(d.count),
          pattern: d.pattern,
          reason: d.reason,
        });
      } else {
        this.bans.delete(d.address);
        remove.push({ address: d.address, family: d.family });
        this.counters.unbans++;
        this.log.action('unban', { address: d.address, reason: d.reason });
      }
      this.dirty = true;
    }
    if (add.length) this.firewall.ban(add);
    if (remove.length) this.firewall.unban(remove);
  }

  /** Tracker records past their time; bans whose kernel timeout has passed are logged and forgotten. */
  private setBan(address: string, ban: ActiveBan): void {
    this.bans.set(address, ban);
    if (ban.expiry < this.nextExpiry) this.nextExpiry = ban.expiry;
  }

  private prune(now: number): void {
    if (this.tracker.prune(now) > 0) this.dirty = true;
    // This runs after every batch (every few ms under a flood): walk the bans only once the
    // earliest of them is due, not tens of thousands of times a second for nothing.
    if (now < this.nextExpiry) return;
    let next = Infinity;
    for (const [address, b] of this.bans) {
      if (b.expiry > now) {
        if (b.expiry < next) next = b.expiry;
        continue;
      }
      this.bans.delete(address);
      this.counters.unbans++;
      this.dirty = true;
      this.log.action('unban', { address, reason: 'expired', pattern: b.pattern ?? '' });
    }
    this.nextExpiry = next;
  }

  private startTimers(): void {
    const expires = this.engine.config.expires;
    const pruneMs = Math.min(30_000, Math.max(1000, (expires * 1000) / 20));
    this.timers.push(
      setInterval(() => {
        this.prune(Date.now());
        this.scheduleSave();
      }, pruneMs),
    );
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
    const c = this.counters;
    return `${c.entries} entries, ${c.matches} matches, ${c.bans} bans (${this.bans.size} active), ${this.tracker.size} records`;
  }

  // ---- state ----

  private snapshot(): State {
    const bans = [...this.bans].map(([address, b]) => ({ address, family: b.family, expiry: b.expiry, pattern: b.pattern }));
    const saved = Date.now();
    const cursor = this.journal.cursor ?? this.savedCursor;
    this.savedCursor = cursor;
    this.lastSave = saved;
    return { version: 1, saved, cursor, records: [...this.tracker.records()], bans };
  }

  /** Changed records or bans: saved within SAVE_EVERY_MS (StateSaver throttles); the cursor alone, rarely. */
  private scheduleSave(): void {
    if (!this.saver || this.stopping) return;
    const now = Date.now();
    if (this.dirty || (this.journal.cursor !== this.savedCursor && now - this.lastCursorSave >= CURSOR_SAVE_EVERY_MS)) {
      this.dirty = false;
      this.lastCursorSave = now;
      this.saver.markDirty();
    }
  }

  // ---- signals ----

  /** SIGHUP: a new config and patterns, all or nothing; records are kept. */
  reload(): boolean {
    let next: Engine;
    try {
      next = buildEngine(this.opts);
    } catch (e) {
      this.log.error(`reload refused, still running the previous configuration: ${errText(e)}`);
      return false;
    }
    const old = this.engine.config;
    const restartOnly: string[] = [];
    for (const k of ['backend', 'iptPath', 'fwcmdPath', 'nftPath', 'ipv6', 'nocreate', 'maxelem', 'stateDir', 'socket'] as const) {
      if (JSON.stringify(old[k]) !== JSON.stringify(next.config[k])) restartOnly.push(k);
    }
    const journalChanged = JSON.stringify([this.engine.matches, this.engine.fields]) !== JSON.stringify([next.matches, next.fields]);
    this.engine = next;
    this.tracker.configure(trackerOptions(next));
    for (const f of next.files) this.log.info(`patterns ${f.name}: ${f.patterns.length} loaded`, { path: f.path });
    for (const w of untrustedFilters(next.files)) this.log.warn(w);
    this.log.info(`configuration reloaded: allowlist ${next.allowlist.size} entries`, {
      config: next.config.file ?? 'none (built-in defaults)',
      threshold: String(next.config.threshold),
      expires: String(next.config.expires),
    });
    if (restartOnly.length) this.log.warn(`changed settings that take effect only after a restart: ${restartOnly.join(', ')}`);
    if (journalChanged) {
      // The running iterator ends on close(); run() reopens at the same cursor with the new matches.
      this.reopenJournal = true;
      this.journal.close();
    }
    return true;
  }

  /** SIGUSR1: the record table, one line per record. */
  dump(): void {
    const now = Date.now();
    this.log.info(`record table: ${this.tracker.size} records, ${this.bans.size} active bans`);
    for (const r of this.tracker.records()) {
      this.log.info('record', {
        address: r.address,
        score: fmtScore(r.score),
        count: String(r.count),
        first: new Date(r.first).toISOString(),
        last: new Date(r.last).toISOString(),
        banned: String(r.banned),
        ban_left: r.banExpiry > now ? String(Math.ceil((r.banExpiry - now) / 1000)) : '0',
        pattern: r.pattern ?? '',
      });
    }
    for (const [address, b] of this.bans) {
      if (this.tracker.get(address)) continue;
      this.log.info('ban without record', { address, ban_left: String(Math.ceil((b.expiry - now) / 1000)), pattern: b.pattern ?? '' });
    }
  }

  /** SIGTERM/SIGINT: stop reading, flush the firewall batch, save, close. Bans stay in the kernel. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    notify('STOPPING=1');
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    try {
      this.journal.close();
    } catch {
      /* already closed */
    }
    if (this.loop) await this.loop.catch(() => {});
    if (this.control) await this.control.close().catch(() => {});
    await this.firewall.flush();
    await this.firewall.close();
    if (this.saver) {
      this.saver.markDirty();
      await this.saver.flush();
    }
    this.log.info('stopped; bans stay in the firewall until their timeouts', { active: String(this.bans.size) });
  }

  // ---- control socket ----

  status(): StatusResult & Record<string, unknown> {
    const c = this.counters;
    return {
      version: version(),
      pid: process.pid,
      uptime: Math.round((Date.now() - this.started) / 1000),
      backend: this.firewall.backend.name,
      entries: c.entries,
      matches: c.matches,
      bansActive: this.bans.size,
      records: this.tracker.size,
      cursor: this.journal.cursor,
      config: this.engine.config.file,
      stateFile: this.store?.file,
      lastSave: this.lastSave,
      // extras
      position: this.position,
      skipped: c.skipped,
      bans: c.bans,
      unbans: c.unbans,
      evicted: this.tracker.evicted,
      dryRun: this.opts.dryRun,
    };
  }

  /** Active bans: the firewall's list merged with what the tracker knows of each address. */
  list(): ListItem[] {
    const now = Date.now();
    const out: ListItem[] = [];
    for (const [address, b] of this.firewall.active()) {
      const mine = this.bans.get(address);
      const rec = this.tracker.get(address);
      out.push({
        address,
        family: b.family,
        remaining: Math.max(0, Math.ceil((b.expiry - now) / 1000)),
        score: rec?.score ?? mine?.score ?? 0,
        count: rec?.count ?? mine?.count ?? 0,
        pattern: mine?.pattern ?? rec?.pattern ?? null,
      });
    }
    out.sort((a, b) => a.remaining - b.remaining);
    return out;
  }

  async handle(req: ControlRequest): Promise<ControlResponse> {
    try {
      switch (req.cmd) {
        case 'status':
          return { ok: true, result: this.status() };
        case 'list':
          return { ok: true, result: this.list() };
        case 'ban': {
          const p = parseAddress(String(req.address));
          if (!p) return { ok: false, error: `not a single IPv4/IPv6 address: ${String(req.address)}` };
          const seconds = req.seconds ?? this.engine.config.expires;
          if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds <= 0) return { ok: false, error: `ban time must be a positive number of seconds, not ${String(req.seconds)}` };
          const now = Date.now();
          const ds = this.tracker.ban(p.address, p.family, seconds, now);
          // A manual ban replaces whatever ban there was, even a longer one.
          this.bans.delete(p.address);
          this.apply(ds, now);
          this.scheduleSave();
          await this.firewall.flush();
          const banned = ds.some((d) => d.action === 'ban');
          if (!banned) return { ok: false, error: `${p.address} was not banned (allowlisted?)` };
          return { ok: true, result: { address: p.address, family: p.family, seconds: Math.ceil(seconds) } };
        }
        case 'unban': {
          const p = parseAddress(String(req.address));
          if (!p) return { ok: false, error: `not a single IPv4/IPv6 address: ${String(req.address)}` };
          const was = this.bans.has(p.address) || this.firewall.active().has(p.address);
          const ds = this.tracker.unban(p.address, p.family);
          if (!ds.some((d) => d.action === 'unban')) ds.push({ action: 'unban', address: p.address, family: p.family, reason: 'manual' });
          this.apply(ds, Date.now());
          this.scheduleSave();
          await this.firewall.flush();
          return { ok: true, result: { address: p.address, family: p.family, wasBanned: was } };
        }
        default:
          return { ok: false, error: `unknown command: ${String((req as { cmd?: unknown }).cmd)}` };
      }
    } catch (e) {
      return { ok: false, error: errText(e) };
    }
  }
}

function fmtScore(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(2);
}

function notify(state: string): void {
  try {
    systemd.notify(state);
  } catch {
    /* not under systemd, or the addon refused: nothing to tell */
  }
}

/**
 * Runs the daemon until SIGTERM/SIGINT. Resolves with the exit status. Start-up errors are thrown
 * (the CLI turns them into one line and an exit status).
 */
export async function runDaemon(opts: DaemonOptions): Promise<number> {
  const d = await Daemon.start(opts);
  return new Promise<number>((resolve) => {
    const onStop = (sig: string) => {
      opts.log.info(`${sig}: stopping`);
      process.off('SIGHUP', onHup);
      process.off('SIGUSR1', onUsr1);
      d.stop().then(
        () => resolve(0),
        (e) => {
          opts.log.error(`error while stopping: ${errText(e)}`);
          resolve(1);
        },
      );
    };
    const onHup = () => {
      opts.log.info('SIGHUP: reloading configuration and patterns');
      // MONOTONIC_USEC: newer systemd wants it with RELOADING=1 (uv's hrtime is CLOCK_MONOTONIC).
      notify(`RELOADING=1\nMONOTONIC_USEC=${process.hrtime.bigint() / 1000n}`);
      d.reload();
      notify('READY=1');
    };
    const onUsr1 = () => d.dump();
    process.once('SIGTERM', () => onStop('SIGTERM'));
    process.once('SIGINT', () => onStop('SIGINT'));
    process.on('SIGHUP', onHup);
    process.on('SIGUSR1', onUsr1);
  });
}
