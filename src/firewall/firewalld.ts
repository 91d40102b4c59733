// firewalld (placeholder until the real-firewalld investigation lands): not chosen by auto.
import type { BackendModule } from './backend';
export const firewalldBackend: BackendModule = {
  name: 'firewalld',
  async available() {
    return false;
  },
  create() {
    throw new Error('firewalld backend not implemented yet');
  },
};
