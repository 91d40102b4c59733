// What an engine runs, as log lines: at start and after every reload or `tallow set`.
import type { Engine } from './engine';
import type { Log } from './log';
import { untrustedFilters } from './patterns';
import { portsText } from './scoring';

/** One line per file of the enabled rules, one per enabled rule, one for the rules that are off. */
export function logEngine(log: Log, e: Engine): void {
  const perFile = new Map<string, { name: string; n: number }>();
  for (const b of e.blocks) {
    const f = perFile.get(b.path) ?? { name: b.name, n: 0 };
    f.n += b.patterns.length;
    perFile.set(b.path, f);
  }
  for (const [p, f] of perFile) log.info(`patterns ${f.name}: ${f.n} loaded`, { path: p });
  for (const r of e.rules) {
    if (!r.enabled) continue;
    const policy = r.pool === '' ? "tallow.conf's threshold and expires" : `threshold ${r.threshold}${r.findtime ? `, findtime ${r.findtime} s` : ''}, bantime ${r.bantime} s`;
    log.info(`rule ${r.name}: ${policy}, ports ${portsText(r.scope, r.scope.id)}`, { where: r.where });
  }
  const off = e.rules.filter((r) => !r.enabled).map((r) => r.name);
  if (off.length) log.info(`rules off: ${off.join(', ')} (enable one with [{"name": "NAME", "enabled": true}] in a file of patterns_dir)`);
  for (const w of untrustedFilters(e.blocks)) log.warn(w);
}
