// A rule: one block of a patterns file with its policy (issue 14). tallow's files carry no policy
// keys: their blocks take tallow.conf's threshold and expires and share one score per address,
// exactly as in tallow. A block with its own policy keeps its own scores. Types only; parsing is
// in rules.ts, scoring in the tracker.
import type { BantimeIncrement } from './history/settings';
import type { Scope } from './scope';

export interface Rule {
  /** Shown in logs, `list`, `status`, `rules`, metrics. */
  name: string;
  /**
   * Score pool: '' for rules that set none of threshold/limit/findtime/bantime/ports/ban_prefix
   * (they share tallow.conf's policy and one score per address, as tallow does); else the name.
   */
  pool: string;
  enabled: boolean;
  /** `no_log`: its matches are not stored in the history (its bans are); StrongMonitor's prefixes not worth keeping. */
  noLog: boolean;
  /** Score at which an address is banned (`limit` N: N, every match scoring 1 unless its item says). */
  threshold: number;
  /** Seconds; matches older than this no longer count. 0: no window (tallow: scores fall only when the record is pruned after `expires`). */
  findtime: number;
  /** Seconds a threshold ban lasts. */
  bantime: number;
  /** Ports and whether networks are banned. */
  scope: Scope;
  /** Prefix length banned per family: 32 / 128 ban the address itself. */
  prefix: { 4: number; 6: number };
  /**
   * `notify`: each match becomes a notify event for the actions (a login alert); never scored,
   * never banned. Absent: an ordinary rule (the key is set only on notify rules).
   */
  action?: 'notify';
  /** A notify rule: allowlisted addresses are reported too (true, the default). */
  notifyAllowlisted?: boolean;
  /** `"actions"`: the tallow.conf actions its bans, unbans and logins go to; absent: `actions=`. */
  actions?: string[];
  /** `publish: false`: its bans are not shared with the fleet (absent: they are). */
  publish?: false;
  /**
   * Repeat offenders (issue 15), set only when the rule gives them: absent, tallow.conf's
   * bantime_increment, bantime_max and recidive_window apply (recidive.ts).
   */
  increment?: BantimeIncrement;
  /** seconds */
  bantimeMax?: number;
  /** seconds */
  recidiveWindow?: number;
  /** Where it is defined, for messages: `/etc/tallow/postfix.json (block 1)`. */
  where: string;
}
