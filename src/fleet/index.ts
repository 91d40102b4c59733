// The fleet's wiring (issue 17): the publisher (a listener), the link (connection, catch-up,
// maintenance) and what a remote ban or unban does here, through the daemon's own ledger. Off
// unless tallow.conf says fleet=...; never in a dry run (it would ban elsewhere for real).
import type { Config } from '../config';
import type { Daemon } from '../daemon';
import { MAX_BAN_SECONDS } from '../limits';
import type { Logger } from '../log';
import type { Family as MetricFamily } from '../metrics';
import { MANUAL_NETWORKS } from '../scope';
import { isNetwork, overlaps, parseNetwork } from '../target';
import type { Decision } from './intake';
import { FleetPublisher, Outbox } from './publisher';
import { fleetOf, fleetPgSettings } from './settings';
import { FleetLink, type FleetStatus, type LinkOptions } from './subscriber';

export type { FleetStatus };

/** The part of the daemon the fleet acts on. */
export type FleetHost = Pick<Daemon, 'ledger' | 'engine' | 'scoring' | 'metrics' | 'state' | 'scopes'>;
type Host = FleetHost;

export class Fleet {
  readonly outbox: Outbox;
  readonly listener: FleetPublisher;
  readonly link: FleetLink;
  /** remote bans of a network this node has no rule banning networks for */
  private noScope = 0;

  constructor(
    private readonly d: Host,
    config: Config,
    log: Logger,
    /** tests: shorter back-off and poll */
    tuning: Partial<Pick<LinkOptions, 'retryBaseMs' | 'retryMaxMs' | 'pollMs' | 'maintenanceMs'>> = {},
  ) {
    const f = fleetOf(config);
    const pg = fleetPgSettings(config);
    // Never logged or shown (fleetWhere leaves it out), but a readable tallow.conf would give it away.
    if (pg.url && /^[^:]+:\/\/[^/@]*:[^/@]*@/.test(pg.url)) log.warn('fleet: the URL in tallow.conf holds a password; fleet_password_file or PGPASSFILE keep it out of a readable file');
    this.outbox = new Outbox(f.fleetQueue);
    this.link = new FleetLink({
      pg,
      log,
      outbox: this.outbox,
      node: f.fleetNode,
      accept: f.fleetAccept,
      quorum: f.fleetQuorum,
      maxPerMinute: f.fleetMaxPerMinute,
      isAllowed: (t, fam) => this.allowed(t, fam),
      apply: { ban: (dec, now) => this.ban(dec, now), unban: (a, fam, before, now) => this.unban(a, fam, before, now) },
      ...tuning,
    });
    // The rule's `publish` (true unless a rule says false); a manual ban (rule null) always.
    this.listener = new FleetPublisher(this.outbox, (rule) => rule === null || d.engine.rules.find((r) => r.name === rule)?.publish !== false, () => this.link.wake());
    d.metrics.extra.push(() => this.families());
  }

  start(): void {
    this.link.start();
  }

  status(): FleetStatus & { noScope: number } {
    return { ...this.link.status(), noScope: this.noScope };
  }

  /** `tallow unban --fleet`: every node lifts the target's bans made before now. */
  unbanEverywhere(address: string, family: 4 | 6, now: number): void {
    this.outbox.push({ kind: 'unban', address, family, rule: null, reason: 'manual', seconds: 0, since: now, expiry: now + MAX_BAN_SECONDS * 1000 });
    this.link.wake();
  }

  close(): Promise<void> {
    return this.link.close();
  }

  /** This node's allowlist: an address in it, or a network overlapping it. */
  private allowed(target: string, family: 4 | 6): boolean {
    const allow = this.d.engine.allowlist;
    const net = parseNetwork(target);
    if (!net) return allow.has(target, family);
    return allow.has(net.base, family) || allow.entries.some((a) => overlaps(net, { base: a.address, family: a.family, prefix: a.prefix }));
  }

  /**
   * A remote ban, for its remaining time, where this node's rule of the same name bans (its
   * ports); a rule this node does not run: every port. A network goes where networks are banned
   * here: a rule of the same name that bans them, another on every port, else the every-port sets
   * of networks banned by hand (made at start when the fleet is on: daemon.ts).
   */
  private ban(dec: Extract<Decision, { do: 'ban' }>, now: number): boolean {
    const { row } = dec;
    const rule = row.rule === null ? undefined : this.d.engine.rules.find((r) => r.name === row.rule && r.enabled && r.action !== 'notify');
    let scope = rule?.scope;
    if (isNetwork(row.address)) {
      if (!scope?.net) {
        const any = this.d.engine.rules.find((r) => r.enabled && r.scope.net && r.scope.ports === null)?.scope ?? this.d.scopes().get(MANUAL_NETWORKS.id);
        if (!any) {
          this.noScope++;
          return false;
        }
        scope = any;
      }
    } else if (scope?.net) scope = undefined;
    // To the ms: the ban ends here when it ends on the node that made it.
    const out = this.d.ledger.ban(
      { address: row.address, family: row.family, scope: scope?.id ?? '', rule: row.rule, origin: `remote:${row.node}`, reason: dec.reason, pattern: null, score: 0, count: 0, seconds: Math.min((row.expiry - now) / 1000, MAX_BAN_SECONDS) },
      now,
    );
    return out.ok;
  }

  private unban(address: string, family: 4 | 6, before: number, now: number): number {
    let n = 0;
    for (const b of this.d.ledger.allOf(address)) {
      if (b.since > before) continue; // banned again since the unban was asked
      this.d.ledger.unban(address, 'manual', now, b.scope);
      n++;
    }
    this.d.scoring.unban(address, family);
    if (n) this.d.state?.changed();
    return n;
  }

  private families(): MetricFamily[] {
    const s = this.link.status();
    const one = (value: number) => [{ labels: {}, value }];
    return [
      { name: 'tallow_fleet_connected', help: 'Connected to the fleet table (1) or not (0).', type: 'gauge', samples: one(s.connected ? 1 : 0) },
      { name: 'tallow_fleet_state_since_seconds', help: 'When the fleet connection was made or lost (tallow_fleet_connected says which), seconds since the epoch.', type: 'gauge', samples: one((s.since ?? 0) / 1000) },
      { name: 'tallow_fleet_last_id', help: 'Id of the last fleet row read.', type: 'gauge', samples: one(s.lastId) },
      { name: 'tallow_fleet_nodes_seen', help: 'Nodes whose rows were read.', type: 'gauge', samples: one(s.nodesSeen.length) },
      { name: 'tallow_fleet_published_total', help: "This node's bans and unbans written to the fleet table.", type: 'counter', samples: one(s.published) },
      { name: 'tallow_fleet_queue_length', help: 'Rows waiting to be published.', type: 'gauge', samples: one(s.queued) },
      { name: 'tallow_fleet_dropped_total', help: 'Rows not published because fleet_queue was full.', type: 'counter', samples: one(s.dropped) },
      { name: 'tallow_fleet_remote_bans_total', help: "Other nodes' bans applied here.", type: 'counter', samples: one(s.remoteApplied) },
      { name: 'tallow_fleet_remote_unbans_total', help: "Other nodes' fleet-wide unbans that lifted a ban here.", type: 'counter', samples: one(s.remoteUnbans) },
      {
        name: 'tallow_fleet_remote_ignored_total',
        help: "Other nodes' bans not applied here, by reason.",
        type: 'counter',
        samples: [
          { labels: { reason: 'allowlisted' }, value: s.ignoredAllowlisted },
          { labels: { reason: 'capped' }, value: s.ignoredCapped },
          { labels: { reason: 'no_scope' }, value: this.noScope },
        ],
      },
      { name: 'tallow_fleet_quorum_waiting', help: 'Targets reported by fewer nodes than fleet_quorum.', type: 'gauge', samples: one(s.quorumWaiting) },
    ];
  }
}
