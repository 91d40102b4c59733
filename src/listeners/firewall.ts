// The kernel as a listener: new and restored bans go into the firewall queue (which batches them
// into one process per tick and retries on failure), manual unbans come out. Expired bans need
// nothing: the kernel entry carries its own timeout. Adopted bans are already in the kernel, and
// a ban the kernel refused was never there. Each ban goes into its scope's sets ('' when the
// ban names none: tallow's own sets, every port).
import type { Listener, TallowEvent } from '../events';
import type { BanEntry, BanRemoval } from '../firewall/backend';
import type { Firewall } from '../firewall';

/** The ban's scope id; bans made before scopes existed have none. */
const scopeOf = (ban: { address: string; scope?: string }): string => ban.scope ?? '';

export function firewallListener(firewall: Firewall): Listener {
  return {
    name: 'firewall',
    // The kernel path must never wait behind a batch size.
    immediate: true,
    maxBatch: Infinity,
    handle(events: TallowEvent[]): void {
      const now = Date.now();
      const add: BanEntry[] = [];
      const remove: BanRemoval[] = [];
      for (const e of events) {
        if (e.kind === 'ban') {
          if (e.cause === 'adopted') continue;
          const seconds = (e.ban.expiry - now) / 1000;
          if (seconds > 0) add.push({ address: e.ban.address, family: e.ban.family, seconds, scope: scopeOf(e.ban) });
        } else if (e.kind === 'unban' && e.reason === 'manual') {
          // expired: the kernel entry times out by itself; refused: the kernel never held it.
          remove.push({ address: e.ban.address, family: e.ban.family, scope: scopeOf(e.ban) });
        }
      }
      // Queued in order: a ban and an unban of the same address and scope in one batch end as the last says.
      if (add.length) firewall.ban(add);
      if (remove.length) firewall.unban(remove);
    },
    flush: () => firewall.flush(),
    close: () => firewall.close(),
  };
}
