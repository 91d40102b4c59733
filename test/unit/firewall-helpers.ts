// What the firewall unit tests share: a configuration whose tools do not exist, and a logger that
// keeps its lines.
import type { Config } from '../../src/config';
import { defaultHistorySettings } from '../../src/history/settings';
import type { Logger } from '../../src/firewall/backend';

export function config(over: Partial<Config> = {}): Config {
  return {
    file: null, fwcmdPath: '/nonexistent-tallow', iptPath: '/nonexistent-tallow', expires: 3600, whitelist: [], ipv6: true,
    nocreate: false, threshold: 1, backend: 'auto', nftPath: '/nonexistent-tallow', maxelem: 1_000_000, maxRecords: 1000,
    patternsDir: '/etc/tallow', stateDir: '/var/lib/tallow', socket: '/run/tallow.sock', metricsListen: '', metricsTextfile: '', ...defaultHistorySettings(), ...over,
  };
}

export type Line = { level: string; msg: string; fields?: Record<string, string> };
export function logger(): Logger & { lines: Line[] } {
  const lines: Line[] = [];
  const mk = (level: string) => (msg: string, fields?: Record<string, string>) => void lines.push({ level, msg, fields });
  return { lines, info: mk('info'), warn: mk('warn'), error: mk('error'), debug: mk('debug') };
}
