// tallow.conf: `key=value` lines, `#` comments. tallow's keys keep their meaning; ours are added.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import * as net from 'node:net';
import { isAbsolute, join } from 'node:path';
import type { Family } from './address';
import { DEFAULT_ALLOWLIST, parseAllowEntry } from './allowlist';
import { MAX_BAN_SECONDS } from './limits';
import { defaultHistorySettings, HISTORY_KEYS, type HistorySettings } from './history/settings';
import { ActionCollector, defaultActionSettings, isActionKey, type ActionSettings } from './actions/settings';
import { defaultFleetSettings, FLEET_KEYS, type FleetSettings } from './fleet/settings';

export type BackendName = 'auto' | 'ipset' | 'firewalld' | 'nftables' | 'none';

/** The history_* keys, bantime_increment, bantime_max, recidive_window: src/history/settings.ts. */
/** actions= and the action.NAME.* keys: src/actions/settings.ts. */
/** fleet= and the fleet_* keys: src/fleet/settings.ts. */
export interface Config extends HistorySettings, ActionSettings, FleetSettings {
  /** The file read, or null for built-in defaults (no /etc/tallow.conf). */
  file: string | null;
  /** The drop-ins read after it (`<file>.d/*.conf`, in name order). */
  dropins?: string[];
  // tallow's keys
  fwcmdPath: string;        // fwcmd_path: directory holding firewall-cmd
  iptPath: string;          // ipt_path: directory holding ipset, iptables, ip6tables
  expires: number;          // expires: seconds
  whitelist: string[];      // whitelist: repeatable; tallow's defaults when none
  ipv6: boolean;            // ipv6
  nocreate: boolean;        // nocreate
  // ours
  threshold: number;        // threshold
  backend: BackendName;     // backend
  nftPath: string;          // nft_path: directory holding nft
  maxelem: number;          // maxelem: size of the kernel sets
  maxRecords: number;       // max_records: tracker cap
  patternsDir: string;      // patterns_dir: administrator's pattern files (/etc/tallow)
  stateDir: string;         // state_dir
  socket: string;           // socket: control socket path
  metricsListen: string;    // metrics_listen: ADDRESS:PORT of the Prometheus endpoint, '' = off
  metricsTextfile: string;  // metrics_textfile: node_exporter textfile path, '' = off
  releaseMemory?: boolean;  // release_memory: give back start-up's pages once settled (memory.ts); absent = yes
}

/** Message is `file:line: what is wrong`; the CLI exits with `exitCode` (78, EX_CONFIG). */
export class ConfigError extends Error {
  readonly exitCode = 78;
}

export const DEFAULT_CONFIG_FILE = '/etc/tallow.conf';

/** ipset's own timeout limit: a longer `expires` would be refused by the kernel set. */
export const MAX_EXPIRES = MAX_BAN_SECONDS;

export function defaultConfig(): Config {
  return {
    file: null,
    dropins: [],
    // tallow-C defaulted both to /usr/sbin (Clear Linux has one bin dir); firewall-cmd is
    // installed in /usr/bin by Debian, Fedora and Arch.
    fwcmdPath: '/usr/bin',
    iptPath: '/usr/sbin',
    expires: 3600,
    whitelist: [...DEFAULT_ALLOWLIST],
    // tallow's rule: on when the kernel has IPv6.
    ipv6: existsSync('/proc/sys/net/ipv6'),
    nocreate: false,
    threshold: 1.0,
    backend: 'auto',
    nftPath: '/usr/sbin',
    // The kernel default (65536) is a wall a large flood reaches; hash:ip grows on demand.
    maxelem: 1048576,
    maxRecords: 100000,
    patternsDir: '/etc/tallow',
    stateDir: '/var/lib/tallow',
    socket: '/run/tallow/tallow.sock',
    metricsListen: '',
    metricsTextfile: '',
    releaseMemory: true,
    ...defaultHistorySettings(),
    ...defaultActionSettings(),
    ...defaultFleetSettings(),
  };
}

type Setter = (c: Config, value: string) => string | null; // returns an error message or null

function int(min: number, max: number, set: (c: Config, n: number) => void): Setter {
  return (c, v) => {
    if (!/^\d+$/.test(v)) return `expected a whole number from ${min} to ${max}, got '${v}'`;
    const n = Number(v);
    if (n < min || n > max) return `expected a whole number from ${min} to ${max}, got '${v}'`;
    set(c, n);
    return null;
  };
}

function bool(set: (c: Config, b: boolean) => void): Setter {
  return (c, v) => {
    const s = v.toLowerCase();
    if (['1', 'true', 'yes', 'on'].includes(s)) set(c, true);
    else if (['0', 'false', 'no', 'off'].includes(s)) set(c, false);
    else return `expected 0 or 1 (or true/false, yes/no), got '${v}'`;
    return null;
  };
}

function path(set: (c: Config, p: string) => void): Setter {
  return (c, v) => {
    if (!isAbsolute(v)) return `expected an absolute path, got '${v}'`;
    set(c, v);
    return null;
  };
}

const KEYS: Record<string, Setter> = {
  fwcmd_path: path((c, p) => (c.fwcmdPath = p)),
  ipt_path: path((c, p) => (c.iptPath = p)),
  nft_path: path((c, p) => (c.nftPath = p)),
  patterns_dir: path((c, p) => (c.patternsDir = p)),
  state_dir: path((c, p) => (c.stateDir = p)),
  socket: path((c, p) => (c.socket = p)),
  expires: int(1, MAX_EXPIRES, (c, n) => (c.expires = n)),
  maxelem: int(1, 2 ** 31 - 1, (c, n) => (c.maxelem = n)),
  max_records: int(1, 100_000_000, (c, n) => (c.maxRecords = n)),
  ipv6: bool((c, b) => (c.ipv6 = b)),
  nocreate: bool((c, b) => (c.nocreate = b)),
  release_memory: bool((c, b) => (c.releaseMemory = b)),
  threshold: (c, v) => {
    const n = Number(v);
    if (!/^(?:\d+(?:\.\d*)?|\.\d+)$/.test(v) || !(n > 0) || !Number.isFinite(n)) {
      return `expected a number above 0, got '${v}'`;
    }
    c.threshold = n;
    return null;
  },
  backend: (c, v) => {
    if (v !== 'auto' && v !== 'ipset' && v !== 'firewalld' && v !== 'nftables' && v !== 'none') {
      return `expected auto, ipset, firewalld, nftables or none, got '${v}'`;
    }
    c.backend = v;
    return null;
  },
  metrics_listen: (c, v) => {
    if (v === 'off' || v === 'no') {
      c.metricsListen = '';
      return null;
    }
    const m = /^(?:\[([0-9a-fA-F:.]+)\]|([0-9.]+)):(\d{1,5})$/.exec(v);
    const host = m ? (m[1] ?? m[2]) : '';
    if (!m || net.isIP(host) === 0 || Number(m[3]) < 1 || Number(m[3]) > 65535) {
      return `expected ADDRESS:PORT with a literal address (e.g. 127.0.0.1:9725 or [::1]:9725) or off, got '${v}'`;
    }
    if (m[1] !== undefined ? net.isIPv6(host) === false : net.isIPv4(host) === false) return `expected [IPv6]:PORT or IPv4:PORT, got '${v}'`;
    c.metricsListen = v;
    return null;
  },
  metrics_textfile: (c, v) => {
    if (v === 'off' || v === 'no') c.metricsTextfile = '';
    else if (isAbsolute(v)) c.metricsTextfile = v;
    else return `expected an absolute path or off, got '${v}'`;
    return null;
  },
  ...HISTORY_KEYS,
  ...FLEET_KEYS,
  whitelist: () => null, // collected separately (repeatable)
  actions: () => null, // collected with the action.NAME.* keys (src/actions/settings.ts)
};

/** The allowlist as the files read so far left it: tallow's defaults until a file names an entry. */
interface Whitelist {
  entries: string[];
  defaults: boolean;
}

/**
 * One file's lines applied to `config`. In the main file the first `whitelist` entry replaces the
 * defaults (tallow's rule); in a drop-in entries add to the list; `whitelist=` (empty) clears it.
 */
function applyFile(config: Config, list: Whitelist, text: string, file: string, dropin: boolean): void {
  const actions = dropin ? null : new ActionCollector(file);
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const fail = (message: string): never => {
      throw new ConfigError(`${file}:${i + 1}: ${message}`);
    };
    const line = lines[i].trim();
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq < 0) fail(`expected key=value, got '${line}'`);
    const key = line.slice(0, eq).trim();
    const value = line.slice(eq + 1).trim();
    if (isActionKey(key)) {
      // An action is checked as a whole (its keys together): it is defined in one file, tallow.conf.
      if (!actions) fail(`${key}: actions are defined in the main configuration file, not in a drop-in`);
      const err = actions!.add(key, value, i + 1);
      if (err !== null) fail(err);
      continue;
    }
    const setter = Object.prototype.hasOwnProperty.call(KEYS, key) ? KEYS[key] : undefined;
    if (!setter) fail(`unknown key '${key}' (known: ${Object.keys(KEYS).sort().join(', ')})`);
    if (key === 'whitelist') {
      if (value === '') {
        list.entries = [];
        list.defaults = false;
        continue;
      }
      try {
        parseAllowEntry(value);
      } catch (e) {
        fail(`whitelist: ${(e as Error).message}`);
      }
      if (list.defaults && !dropin) list.entries = [];
      list.defaults = false;
      list.entries.push(value);
      continue;
    }
    if (value === '') fail(`${key}: empty value`);
    const err = setter!(config, value);
    if (err !== null) fail(`${key}: ${err}`);
  }
  if (actions) {
    const built = actions.build();
    if (!built.ok) throw new ConfigError(`${file}:${built.line}: ${built.message}`);
    Object.assign(config, built.settings);
  }
}

/** The main file's text, then each drop-in's (`{file, text}` in the order read). */
export function parseConfig(text: string, file: string, dropins: { file: string; text: string }[] = []): Config {
  const config = defaultConfig();
  config.file = file;
  const list: Whitelist = { entries: [...config.whitelist], defaults: true };
  applyFile(config, list, text, file, false);
  for (const d of dropins) applyFile(config, list, d.text, d.file, true);
  config.whitelist = list.entries;
  config.dropins = dropins.map((d) => d.file);
  return config;
}

/** The drop-in directory of a configuration file: /etc/tallow.conf -> /etc/tallow.conf.d. */
export function dropinDir(file: string): string {
  return `${file}.d`;
}

/** `<file>.d/*.conf`, sorted by name (byte order, as sshd's and systemd's drop-ins); none when the directory is missing. */
export function readDropins(file: string): { file: string; text: string }[] {
  const dir = dropinDir(file);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code === 'ENOENT') return [];
    throw new ConfigError(`${dir}: cannot read: ${err.code ?? err.message}`);
  }
  const out: { file: string; text: string }[] = [];
  for (const name of names.filter((n) => n.endsWith('.conf') && !n.startsWith('.')).sort()) {
    const p = join(dir, name);
    try {
      if (!statSync(p).isFile()) continue;
      out.push({ file: p, text: readFileSync(p, 'utf8') });
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new ConfigError(`${p}: cannot read: ${err.code ?? err.message}`);
    }
  }
  return out;
}

/**
 * The file, then its drop-ins. explicit=false: a missing file means defaults (tallow's rule), its
 * drop-ins still apply; explicit=true (--config): missing is an error.
 */
export function loadConfig(file: string, explicit: boolean): Config {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    if (err.code !== 'ENOENT' || explicit) throw new ConfigError(`${file}: cannot read: ${err.code ?? err.message}`);
    const dropins = readDropins(file);
    if (dropins.length === 0) return defaultConfig();
    const c = parseConfig('', file, dropins);
    c.file = null;
    return c;
  }
  return parseConfig(text, file, readDropins(file));
}
export type { Family };
