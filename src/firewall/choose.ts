// Which backend runs: backend=auto tries them in order, a named one must be usable here.
import type { Config } from '../config';
import { ALL_PORTS, type Scope } from '../scope';
import type { BackendModule, FirewallBackend, FirewallSettings, Logger } from './backend';
import { scopeList } from './scopes';

/** No usable firewall: the daemon exits with EX_UNAVAILABLE. */
export class FirewallError extends Error {
  readonly exitCode = 69;
}

/** In backend=auto preference order. Adding a backend is adding its name here (or to BY_NAME_ONLY) and to load(). */
export const BACKEND_NAMES = ['firewalld', 'ipset', 'nftables'] as const;
/** Never chosen by auto: only when tallow.conf names it. */
const BY_NAME_ONLY = ['none'] as const;

// A backend's module is loaded when it is first asked for: a daemon loads the ones backend=auto
// tries or the one configured, not the others (idle memory, issue 12).
function load(name: string): BackendModule | undefined {
  switch (name) {
    case 'firewalld':
      return (require('./firewalld') as typeof import('./firewalld')).firewalldBackend;
    case 'ipset':
      return (require('./ipset') as typeof import('./ipset')).ipsetBackend;
    case 'nftables':
      return (require('./nftables') as typeof import('./nftables')).nftablesBackend;
    case 'none':
      return (require('./none') as typeof import('./none')).noneBackend;
    case 'dryrun':
      return (require('./dryrun') as typeof import('./dryrun')).dryrunBackend;
  }
  return undefined;
}

/** The part of tallow.conf the backends read, and the scopes the rules ban in (ALL_PORTS always). */
export function firewallSettings(config: Config, scopes: readonly Scope[] = [ALL_PORTS]): FirewallSettings {
  const { expires, ipv6, nocreate, maxelem, iptPath, nftPath, fwcmdPath } = config;
  return { expires, ipv6, nocreate, maxelem, iptPath, nftPath, fwcmdPath, scopes: scopeList(scopes) };
}

/** The module running (or to run) for this configuration's `backend` key, if it names one. */
export function backendModule(name: string): BackendModule | undefined {
  return load(name);
}

/**
 * backend=auto: firewalld if running, else ipset+iptables if present, else nftables. dryRun: log
 * only. `scopes`: where bans apply (the rules' scopes); sets and rules are made for each.
 */
export async function chooseBackend(config: Config, log: Logger, dryRun: boolean, scopes: readonly Scope[] = [ALL_PORTS]): Promise<FirewallBackend> {
  const settings = firewallSettings(config, scopes);
  if (dryRun) return load('dryrun')!.create(settings, log);
  if (config.backend === 'auto') {
    for (const name of BACKEND_NAMES) {
      const m = load(name)!;
      if (await m.available(settings)) return m.create(settings, log);
    }
    throw new FirewallError(`no firewall backend available: ${BACKEND_NAMES.map((n) => load(n)!.unavailableWhy(settings)).join(', ')}`);
  }
  // none is only ever chosen by name: auto must never leave a host unprotected.
  const names: readonly string[] = [...BACKEND_NAMES, ...BY_NAME_ONLY];
  const m = names.includes(config.backend) ? load(config.backend) : undefined;
  if (!m) throw new FirewallError(`unknown firewall backend "${config.backend}" (expected auto, ${names.join(', ')})`);
  if (!(await m.available(settings))) {
    throw new FirewallError(`backend=${m.name} is configured but not usable here: ${m.unavailableWhy(settings)}`);
  }
  return m.create(settings, log);
}

