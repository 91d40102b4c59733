// Which backend runs: backend=auto tries them in order, a named one must be usable here.
import type { Config } from '../config';
import { ALL_PORTS, type Scope } from '../scope';
import type { BackendModule, FirewallBackend, FirewallSettings, Logger } from './backend';
import { dryrunBackend } from './dryrun';
import { firewalldBackend } from './firewalld';
import { ipsetBackend } from './ipset';
import { nftablesBackend } from './nftables';
import { noneBackend } from './none';
import { scopeList } from './scopes';

/** No usable firewall: the daemon exits with EX_UNAVAILABLE. */
export class FirewallError extends Error {
  readonly exitCode = 69;
}

/** In backend=auto preference order. Adding a backend is adding its module here. */
export const BACKENDS: readonly BackendModule[] = [firewalldBackend, ipsetBackend, nftablesBackend];

/** The part of tallow.conf the backends read, and the scopes the rules ban in (ALL_PORTS always). */
export function firewallSettings(config: Config, scopes: readonly Scope[] = [ALL_PORTS]): FirewallSettings {
  const { expires, ipv6, nocreate, maxelem, iptPath, nftPath, fwcmdPath } = config;
  return { expires, ipv6, nocreate, maxelem, iptPath, nftPath, fwcmdPath, scopes: scopeList(scopes) };
}

/** The module running (or to run) for this configuration's `backend` key, if it names one. */
export function backendModule(name: string): BackendModule | undefined {
  return [...BACKENDS, noneBackend, dryrunBackend].find((b) => b.name === name);
}

/**
 * backend=auto: firewalld if running, else ipset+iptables if present, else nftables. dryRun: log
 * only. `scopes`: where bans apply (the rules' scopes); sets and rules are made for each.
 */
export async function chooseBackend(config: Config, log: Logger, dryRun: boolean, scopes: readonly Scope[] = [ALL_PORTS]): Promise<FirewallBackend> {
  const settings = firewallSettings(config, scopes);
  if (dryRun) return dryrunBackend.create(settings, log);
  if (config.backend === 'auto') {
    for (const m of BACKENDS) {
      if (await m.available(settings)) return m.create(settings, log);
    }
    throw new FirewallError(`no firewall backend available: ${BACKENDS.map((m) => m.unavailableWhy(settings)).join(', ')}`);
  }
  // none is only ever chosen by name: auto must never leave a host unprotected.
  const m = [...BACKENDS, noneBackend].find((b) => b.name === config.backend);
  if (!m) throw new FirewallError(`unknown firewall backend "${config.backend}" (expected auto, ${[...BACKENDS, noneBackend].map((b) => b.name).join(', ')})`);
  if (!(await m.available(settings))) {
    throw new FirewallError(`backend=${m.name} is configured but not usable here: ${m.unavailableWhy(settings)}`);
  }
  return m.create(settings, log);
}

