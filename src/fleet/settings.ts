// tallow.conf keys of the fleet (issue 17): bans shared between servers through PostgreSQL. The
// connection reuses the history store's settings (history/settings.ts, history/postgres.ts):
// `fleet=postgresql` takes history_host, history_port, history_dbname, history_user,
// history_sslmode; `fleet=postgresql://...` is a URL. The password file follows the history's
// rules (root's, mode 0600): fleet_password_file, else history_password_file, else PGPASSFILE.
import { hostname } from 'node:os';
import { isAbsolute } from 'node:path';
import type { Config } from '../config';
import type { PgSettings } from '../history/postgres';
import type { Logger } from '../log';
import type { Fleet, FleetHost } from './index';

// Optional in Config (like the actions' keys): Configs built by hand elsewhere need not name them.
export interface FleetSettings {
  /** `off`, `postgresql` (the history_* keys) or a postgresql:// URL */
  fleet?: string;
  /** this node's name in the shared table (default: the host name) */
  fleetNode?: string;
  /** apply other nodes' bans here */
  fleetAccept?: boolean;
  /** distinct nodes that must report an address before its ban applies here */
  fleetQuorum?: number;
  /** remote bans applied per minute at most; 0: no cap */
  fleetMaxPerMinute?: number;
  /** bans waiting to be published while the server is away; more are dropped and counted */
  fleetQueue?: number;
  fleetPasswordFile?: string;
}

/** Node names: what a role name and a log field can carry without quoting trouble. */
export const NODE_NAME = /^[A-Za-z0-9_.-]{1,63}$/;

export function defaultNodeName(): string {
  const h = hostname().split('.')[0] || 'tallow';
  return NODE_NAME.test(h) ? h : 'tallow';
}

export function defaultFleetSettings(): Required<FleetSettings> {
  return { fleet: 'off', fleetNode: defaultNodeName(), fleetAccept: true, fleetQuorum: 1, fleetMaxPerMinute: 1000, fleetQueue: 100_000, fleetPasswordFile: '' };
}

type Setter = (c: Config, value: string) => string | null;

function whole(min: number, max: number, set: (c: Config, n: number) => void): Setter {
  return (c, v) => {
    if (!/^\d{1,10}$/.test(v) || Number(v) < min || Number(v) > max) return `expected a whole number from ${min} to ${max}, got '${v}'`;
    set(c, Number(v));
    return null;
  };
}

export const FLEET_KEYS: Record<string, Setter> = {
  fleet: (c, v) => {
    if (v === 'off' || v === 'no' || v === '0') c.fleet = 'off';
    else if (v === 'postgresql' || /^postgres(?:ql)?:\/\/\S+$/.test(v)) c.fleet = v;
    else return `expected off, postgresql (with the history_* keys) or a postgresql://USER@HOST/DB URL, got '${v}'`;
    return null;
  },
  fleet_node: (c, v) => {
    if (!NODE_NAME.test(v)) return `expected a node name (1 to 63 letters, digits, _ . -), got '${v}'`;
    c.fleetNode = v;
    return null;
  },
  fleet_accept: (c, v) => {
    const s = v.toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(s)) c.fleetAccept = true;
    else if (['0', 'false', 'no', 'off'].includes(s)) c.fleetAccept = false;
    else return `expected yes or no (or 1/0, true/false), got '${v}'`;
    return null;
  },
  fleet_quorum: whole(1, 100, (c, n) => (c.fleetQuorum = n)),
  fleet_max_per_minute: whole(0, 10_000_000, (c, n) => (c.fleetMaxPerMinute = n)),
  fleet_queue: whole(1, 10_000_000, (c, n) => (c.fleetQueue = n)),
  fleet_password_file: (c, v) => {
    if (v === 'off' || v === 'no') c.fleetPasswordFile = '';
    else if (isAbsolute(v)) c.fleetPasswordFile = v;
    else return `expected an absolute path or off, got '${v}'`;
    return null;
  },
};

/** The fleet keys of a Config, defaults filled in. */
export function fleetOf(c: Config): Required<FleetSettings> {
  const d = defaultFleetSettings();
  for (const k of Object.keys(d) as (keyof FleetSettings)[]) if (c[k] !== undefined) (d as Record<string, unknown>)[k] = c[k];
  return d;
}

/** Read only at start (one connection, one node name); a reload that changes them says so. */
export const FLEET_RESTART_KEYS = ['fleet', 'fleetNode', 'fleetAccept', 'fleetQuorum', 'fleetMaxPerMinute', 'fleetQueue', 'fleetPasswordFile'] as const;

/** The connection: a URL, or the history_* keys; the fleet's password file before the history's. */
export function fleetPgSettings(c: Config): PgSettings {
  const f = fleetOf(c);
  return {
    url: f.fleet.includes('://') ? f.fleet : null,
    host: c.historyHost,
    port: c.historyPort,
    database: c.historyDbname,
    user: c.historyUser,
    sslmode: c.historySslmode,
    passwordFile: f.fleetPasswordFile || c.historyPasswordFile,
    passwordKey: f.fleetPasswordFile ? 'fleet_password_file' : 'history_password_file',
  };
}

/** Where the fleet connects, for logs and `status`: never a password. */
export function fleetWhere(s: PgSettings): string {
  if (s.url) {
    try {
      const u = new URL(s.url);
      return `postgresql ${u.username ? `${decodeURIComponent(u.username)}@` : ''}${u.host || 'localhost'}${u.pathname}`;
    } catch {
      return 'postgresql (fleet=URL)';
    }
  }
  return `postgresql ${s.user}@${s.host || 'localhost'}${s.host.startsWith('/') ? '' : `:${s.port}`}/${s.database}`;
}

/**
 * The fleet, when tallow.conf asks for one (not in a dry run: it would ban on other servers).
 * Loaded only then: a daemon without a fleet loads no pg (issue 12's idle memory).
 */
export function fleetFor(d: FleetHost, config: Config, log: Logger, dryRun: boolean): Fleet | null {
  if (fleetOf(config).fleet === 'off') return null;
  if (dryRun) {
    log.info('fleet: off in a dry run (it would ban on other servers)');
    return null;
  }
  const { Fleet } = require('./index') as typeof import('./index');
  return new Fleet(d, config, log);
}
