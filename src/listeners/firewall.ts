// The kernel as a listener: new and restored bans go into the firewall queue (which batches them
// into one process per tick and retries on failure), manual unbans come out. Expired bans need
// nothing: the kernel entry carries its own timeout. Adopted bans are already in the kernel, and
// a ban the kernel refused was never there.
import type { Listener, TallowEvent } from '../events';
import type { BanEntry } from '../firewall/backend';
import type { Firewall } from '../firewall';
import type { Family } from '../address';

export function firewallListener(firewall: Firewall): Listener {
  return {
    name: 'firewall',
    // The kernel path must never wait behind a batch size.
    immediate: true,
    maxBatch: Infinity,
    handle(events: TallowEvent[]): void {
      const now = Date.now();
      const add: BanEntry[] = [];
      const remove: { address: string; family: Family }[] = [];
      for (const e of events) {
        if (e.kind === 'ban') {
          if (e.cause === 'adopted') continue;
          const seconds = (e.ban.expiry - now) / 1000;
          if (seconds > 0) add.push({ address: e.ban.address, family: e.ban.family, seconds });
        } else if (e.kind === 'unban' && e.reason === 'manual') {
          // expired: the kernel entry times out by itself; refused: the kernel never held it.
          remove.push({ address: e.ban.address, family: e.ban.family });
        }
      }
      // Queued in order: a ban and an unban of the same address in one batch end as the last says.
      if (add.length) firewall.ban(add);
      if (remove.length) firewall.unban(remove);
    },
    flush: () => firewall.flush(),
    close: () => firewall.close(),
  };
}
