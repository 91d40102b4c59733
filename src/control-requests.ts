// What a control request may be, and the check every request passes before the daemon sees
// it: known commands and fields only, canonical addresses, values in range.
import { parseAddress } from './address';
import { validateAllow, type AllowRequest } from './allow-control';
import { validateHistory, type HistoryRequest } from './history/query';
import { MAX_BAN_SECONDS } from './limits';
import { parseSettingValue, splitKey } from './runtime-settings';
import { canonicalTarget } from './target';

export type ControlRequest =
  | { cmd: 'status' }
  /** every ban, or those of one rule */
  | { cmd: 'list'; rule?: string }
  | { cmd: 'metrics' }
  /** `address`: an address or a network; `rule`: on that rule's ports, in its name */
  | { cmd: 'ban'; address: string; seconds?: number; rule?: string }
  /** `address`: an address (every ban of it, in every scope) or a network banned as such */
  | { cmd: 'unban'; address: string; all?: undefined; fleet?: boolean }
  /** every ban there is */
  | { cmd: 'unban'; all: true; address?: undefined }
  /** every rule, or the one named */
  | { cmd: 'rules'; name?: string }
  /** the running allowlist; entries added or removed at runtime (allow-control.ts) */
  | AllowRequest
  /** tallow.conf and the patterns read again (as SIGHUP) */
  | { cmd: 'reload' }
  /** `key`: RULE.threshold, RULE.bantime or RULE.findtime */
  | { cmd: 'get'; key: string }
  /** `value`: the setting's (a score, or whole seconds), checked */
  | { cmd: 'set'; key: string; value: number }
  | HistoryRequest;

const COMMAND_NAMES = 'status, list, metrics, rules, ban, unban, reload, get, set, allow, history';
/** Rule names are shown in logs and label metrics: printable, no spaces. */
const RULE_NAME = /^[!-~]{1,200}$/;

/** Check one decoded request; returns the normalised request or an error message. */
export function validateRequest(value: unknown): { req: ControlRequest } | { error: string } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { error: 'a request must be a JSON object like {"cmd":"status"}' };
  }
  const v = value as Record<string, unknown>;
  if (typeof v.cmd !== 'string') return { error: `missing "cmd" (${COMMAND_NAMES})` };
  if (v.cmd === 'history') return validateHistory(v);
  if (v.cmd === 'allow') return validateAllow(v);
  const allowed: Record<string, string[]> = {
    status: ['cmd'],
    list: ['cmd', 'rule'],
    metrics: ['cmd'],
    rules: ['cmd', 'name'],
    ban: ['cmd', 'address', 'seconds', 'rule'],
    unban: ['cmd', 'address', 'all', 'fleet'],
    reload: ['cmd'],
    get: ['cmd', 'key'],
    set: ['cmd', 'key', 'value'],
  };
  const keys = Object.prototype.hasOwnProperty.call(allowed, v.cmd) ? allowed[v.cmd] : undefined;
  if (!keys) return { error: `unknown command ${JSON.stringify(v.cmd).slice(0, 80)} (${COMMAND_NAMES})` };
  for (const k of Object.keys(v)) {
    if (!keys.includes(k)) return { error: `${v.cmd}: unexpected field ${JSON.stringify(k).slice(0, 80)}` };
  }
  const ruleName = (field: string): string | { error: string } | undefined => {
    const r = v[field];
    if (r === undefined) return undefined;
    if (typeof r !== 'string' || !RULE_NAME.test(r)) return { error: `${v.cmd}: "${field}" must be a rule name, not ${JSON.stringify(r).slice(0, 80)}` };
    return r;
  };
  if (v.cmd === 'status' || v.cmd === 'metrics' || v.cmd === 'reload') return { req: { cmd: v.cmd } };
  if (v.cmd === 'list' || v.cmd === 'rules') {
    const name = ruleName(v.cmd === 'list' ? 'rule' : 'name');
    if (typeof name === 'object') return name;
    if (name === undefined) return { req: { cmd: v.cmd } };
    return { req: v.cmd === 'list' ? { cmd: 'list', rule: name } : { cmd: 'rules', name } };
  }
  if (v.cmd === 'get' || v.cmd === 'set') {
    const k = splitKey(v.key);
    if ('error' in k) return { error: `${v.cmd}: ${k.error}` };
    const key = `${k.rule}.${k.setting}`;
    if (v.cmd === 'get') return { req: { cmd: 'get', key } };
    const n = parseSettingValue(k.setting, v.value);
    if (typeof n !== 'number') return { error: `set: ${n.error}` };
    return { req: { cmd: 'set', key, value: n } };
  }
  if (v.cmd === 'unban' && v.fleet !== undefined && v.fleet !== true && v.fleet !== false) return { error: 'unban: "fleet" must be true or false' };
  if (v.cmd === 'unban' && v.all !== undefined && v.fleet === true) return { error: 'unban: "fleet" lifts one address or network everywhere, not "all"' };
  if (v.cmd === 'unban' && v.all !== undefined) {
    if (v.all !== true) return { error: `unban: "all" must be true, not ${JSON.stringify(v.all).slice(0, 80)}` };
    if (v.address !== undefined) return { error: 'unban: give "address" or "all", not both' };
    return { req: { cmd: 'unban', all: true } };
  }

  if (typeof v.address !== 'string') return { error: `${v.cmd}: "address" must be a string` };
  const text = v.address;
  const shown = JSON.stringify(text.length > 80 ? text.slice(0, 80) + '...' : text);
  let address: string;
  if (text.includes('/')) {
    // A network (a rule's ban prefix, or by hand) is named by its text; host bits are cleared.
    const t = canonicalTarget(text);
    if (!t) return { error: `${v.cmd}: ${shown} is not a valid network (CIDR, e.g. 2001:db8::/64)` };
    address = t.target;
  } else {
    const a = parseAddress(text);
    if (!a) return { error: `${v.cmd}: ${shown} is not an IPv4 or IPv6 address` };
    address = a.address;
  }
  if (v.cmd === 'unban') return { req: { cmd: 'unban', address, ...(v.fleet === true ? { fleet: true } : {}) } };

  const rule = ruleName('rule');
  if (typeof rule === 'object') return rule;
  const req: ControlRequest = { cmd: 'ban', address, ...(rule !== undefined ? { rule } : {}) };
  if (v.seconds === undefined) return { req };
  const s = v.seconds;
  if (typeof s !== 'number' || !Number.isInteger(s) || s < 1 || s > MAX_BAN_SECONDS) {
    return { error: `ban: "seconds" must be a whole number from 1 to ${MAX_BAN_SECONDS}, not ${JSON.stringify(s)}` };
  }
  return { req: { ...req, seconds: s } };
}
