// Addresses no one may get banned: not a log line, the control socket, the state file or the fleet.
// Banning them either cannot work (the kernel refuses 0.0.0.0 in a hash:ip set, and one refused
// element stops a whole `ipset restore` batch) or cuts the host off from itself (loopback, its own
// addresses, multicast it listens to). Unlike the allowlist this is not configurable.
//
// Link-local (169.254.0.0/16, fe80::/10) is NOT in the list: such a source is a real neighbour on
// the same link (a rogue VM or container on a bridge), the kernel sets accept it, and banning it
// harms no one else. The host's own link-local addresses are covered as own addresses;
// an administrator who trusts the whole link allowlists it.
import * as os from 'node:os';
import { parseAddress, type Family } from './address';
import { AddressSet } from './address-set';

export type NeverBanReason = 'unspecified' | 'loopback' | 'multicast' | 'broadcast' | 'own address';

const fixed: [NeverBanReason, AddressSet][] = (() => {
  const list = (nets: [string, number, Family][]): AddressSet => {
    const s = new AddressSet();
    for (const [a, p, f] of nets) s.add(a, p, f);
    return s;
  };
  return [
    // 0.0.0.0/8 is "this network": never a valid source (RFC 1122 3.2.1.3), 0.0.0.0 itself unspecified.
    ['unspecified', list([['0.0.0.0', 8, 4], ['::', 128, 6]])],
    ['loopback', list([['127.0.0.0', 8, 4], ['::1', 128, 6]])],
    ['multicast', list([['224.0.0.0', 4, 4], ['ff00::', 8, 6]])],
    ['broadcast', list([['255.255.255.255', 32, 4]])],
  ];
})();

/** The fixed part: unspecified, loopback, multicast, limited broadcast. `address` canonical. */
export function specialAddress(address: string, family: Family): NeverBanReason | null {
  for (const [reason, list] of fixed) if (list.has(address, family)) return reason;
  return null;
}

/** The interface list as os.networkInterfaces() gives it (replaceable in tests). */
export type InterfaceSource = () => NodeJS.Dict<os.NetworkInterfaceInfo[]>;

export interface NeverBanOptions {
  /** How often to re-read the host's addresses; 0: only on refresh(). Default REFRESH_MS. */
  refreshMs?: number;
  interfaces?: InterfaceSource;
  /** Told when the host's own addresses change (for a log line). */
  onChange?: (added: string[], removed: string[]) => void;
}

/**
 * Re-reading every few seconds: getifaddrs(3) costs tens of microseconds, so this is far below
 * anything measurable, and an address a DHCP lease or a VPN adds is covered within this time.
 */
export const REFRESH_MS = 5000;

/** IPv4 directed broadcast of an interface's network (none for /31 and /32). */
function directedBroadcast(address: string, netmask: string): string | null {
  const a = address.split('.').map(Number);
  const m = netmask.split('.').map(Number);
  if (a.length !== 4 || m.length !== 4 || m.some((x) => !Number.isInteger(x))) return null;
  const bits = m.reduce((n, x) => n + x.toString(2).replace(/0/g, '').length, 0);
  if (bits >= 31 || bits === 0) return null;
  return a.map((x, i) => (x | (~m[i] & 255)) & 255).join('.');
}

export class NeverBan {
  private own = new Map<string, NeverBanReason>();
  private key = '';
  private timer: NodeJS.Timeout | null = null;
  private readonly refreshMs: number;
  private readonly interfaces: InterfaceSource;

  /** Reads the host's addresses once, now; start() keeps them current. */
  constructor(private readonly opts: NeverBanOptions = {}) {
    this.refreshMs = opts.refreshMs ?? REFRESH_MS;
    this.interfaces = opts.interfaces ?? os.networkInterfaces;
    this.refresh();
  }

  /** Why `address` (canonical, as parseAddress gives it) must never be banned, or null. */
  has(address: string, family: Family): NeverBanReason | null {
    return specialAddress(address, family) ?? this.own.get(address) ?? null;
  }

  /** The host's own addresses (and its networks' broadcast addresses) as last read. */
  ownAddresses(): string[] {
    return [...this.own.keys()];
  }

  /** Re-read the host's addresses now; true when they changed. Never throws. */
  refresh(): boolean {
    const next = new Map<string, NeverBanReason>();
    try {
      for (const list of Object.values(this.interfaces())) {
        for (const i of list ?? []) {
          const a = parseAddress(i.address);
          if (!a) continue;
          next.set(a.address, 'own address');
          if (a.family === 4) {
            const b = directedBroadcast(a.address, i.netmask);
            if (b && !next.has(b)) next.set(b, 'broadcast');
          }
        }
      }
    } catch {
      return false; // keep what we had: an empty list would drop protection
    }
    const key = [...next.keys()].sort().join(' ');
    if (key === this.key) return false;
    const added = [...next.keys()].filter((k) => !this.own.has(k));
    const removed = [...this.own.keys()].filter((k) => !next.has(k));
    const first = this.key === '' && this.own.size === 0;
    this.own = next;
    this.key = key;
    if (!first) this.opts.onChange?.(added, removed);
    return true;
  }

  /** Keep the host's addresses current (an unref'd timer: it never keeps the process alive). */
  start(): void {
    if (this.timer || this.refreshMs <= 0) return;
    this.timer = setInterval(() => this.refresh(), this.refreshMs);
    this.timer.unref();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
