// CONTRACT (issue 3 implements): tallow.conf.
import type { Family } from './address';

export type BackendName = 'auto' | 'ipset' | 'firewalld' | 'nftables';

export interface Config {
  /** The file read, or null for built-in defaults (no /etc/tallow.conf). */
  file: string | null;
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
}

/** Message is `file:line: what is wrong`; the CLI exits with `exitCode` (78, EX_CONFIG). */
export class ConfigError extends Error {
  readonly exitCode = 78;
}

export declare const DEFAULT_CONFIG_FILE: string; // '/etc/tallow.conf'
export declare function defaultConfig(): Config;
export declare function parseConfig(text: string, file: string): Config;
/** explicit=false: a missing file means defaults (tallow's rule); explicit=true (--config): missing is an error. */
export declare function loadConfig(file: string, explicit: boolean): Config;
export type { Family };
