// --dry-run: says what it would do and touches nothing. It keeps its own list of what it would
// have banned, so `list()` answers like a real backend would.
import type { Family } from '../address';
import type { BackendModule, BanEntry, FirewallBackend, KernelBan, Logger } from './backend';

class DryRunBackend implements FirewallBackend {
  readonly name = 'dryrun';
  private readonly bans = new Map<string, { family: Family; expiry: number }>();

  constructor(private readonly log: Logger) {}

  describe(): string {
    return 'dry run: no firewall is touched';
  }

  async setup(): Promise<void> {
    this.log.info('dry run: would create the sets and rules');
  }

  async check(): Promise<boolean> {
    return true;
  }

  async apply(add: BanEntry[], remove: { address: string; family: Family }[]): Promise<void> {
    const now = Date.now();
    for (const e of add) {
      this.bans.set(e.address, { family: e.family, expiry: now + e.seconds * 1000 });
      this.log.info('dry run: would ban', { address: e.address, seconds: String(e.seconds) });
    }
    for (const e of remove) {
      this.bans.delete(e.address);
      this.log.info('dry run: would unban', { address: e.address });
    }
  }

  async list(): Promise<KernelBan[]> {
    const now = Date.now();
    const out: KernelBan[] = [];
    for (const [address, b] of this.bans) {
      if (b.expiry <= now) this.bans.delete(address);
      else out.push({ address, family: b.family, remaining: Math.ceil((b.expiry - now) / 1000) });
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
  create(_settings, log) {
    return new DryRunBackend(log);
  },
};
