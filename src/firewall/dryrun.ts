// --dry-run: says what it would do and touches nothing. It keeps its own list of what it would
// have banned, so `list()` answers like a real backend would; each line names the set (the scope).
import type { Family } from '../address';
import { banKey, setName, type Scope } from '../scope';
import type { BackendModule, BanEntry, BanRemoval, FirewallBackend, KernelBan, Logger } from './backend';
import { entryScope, scopeList } from './scopes';

class DryRunBackend implements FirewallBackend {
  readonly name = 'dryrun';
  private readonly bans = new Map<string, { address: string; family: Family; scope: string; expiry: number }>();

  constructor(
    private readonly log: Logger,
    public scopes: readonly Scope[],
  ) {}

  describe(): string {
    return 'dry run: no firewall is touched';
  }

  async setup(): Promise<void> {
    this.log.info('dry run: would create the sets and rules', { scopes: this.scopes.map((s) => s.id || "''").join(',') });
  }

  async setScopes(scopes: Scope[]): Promise<void> {
    const all = scopeList(this.scopes, scopes);
    const added = all.slice(this.scopes.length);
    if (added.length) this.log.info('dry run: would create the sets and rules', { scopes: added.map((s) => s.id).join(',') });
    this.scopes = all;
  }

  async check(): Promise<boolean> {
    return true;
  }

  async apply(add: BanEntry[], remove: BanRemoval[]): Promise<void> {
    const now = Date.now();
    for (const e of add) {
      const scope = entryScope(e);
      this.bans.set(banKey(e.address, scope), { address: e.address, family: e.family, scope, expiry: now + e.seconds * 1000 });
      this.log.info('dry run: would ban', { address: e.address, seconds: String(e.seconds), set: setName(e.family, scope) });
    }
    for (const e of remove) {
      const scope = entryScope(e);
      this.bans.delete(banKey(e.address, scope));
      this.log.info('dry run: would unban', { address: e.address, set: setName(e.family, scope) });
    }
  }

  async list(): Promise<KernelBan[]> {
    const now = Date.now();
    const out: KernelBan[] = [];
    for (const [key, b] of this.bans) {
      if (b.expiry <= now) this.bans.delete(key);
      else out.push({ address: b.address, family: b.family, remaining: Math.ceil((b.expiry - now) / 1000), scope: b.scope });
    }
    return out;
  }
}

export const dryrunBackend: BackendModule = {
  name: 'dryrun',
  restartKeys: [],
  unavailableWhy: () => 'always available',
  async available() {
    return true;
  },
  create(settings, log) {
    return new DryRunBackend(log, scopeList(settings.scopes));
  },
};
