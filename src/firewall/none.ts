// backend=none: no kernel firewall at all. Bans still go through the ledger, the log, the state
// file, the history and every action, so a command action (ufw, a cloud firewall's CLI, a
// router's API) can be the only enforcement. Never chosen by backend=auto.
import type { BackendModule, FirewallBackend, KernelBan } from './backend';

class NoBackend implements FirewallBackend {
  readonly name = 'none';

  describe(): string {
    return 'none: no firewall is touched; bans are enforced only by the actions (action.NAME.ban_command...)';
  }

  async setup(): Promise<void> {}

  async setScopes(): Promise<void> {}

  async check(): Promise<boolean> {
    return true;
  }

  async apply(): Promise<void> {}

  async list(): Promise<KernelBan[]> {
    return [];
  }
}

export const noneBackend: BackendModule = {
  name: 'none',
  restartKeys: [],
  unavailableWhy: () => 'always available',
  async available() {
    return true;
  },
  create() {
    return new NoBackend();
  },
};
