// Reading the kernel's own view in a test's server namespace, without the code under test:
// `ipset list -o save`, `nft -j`, `iptables -S`. Plus tool wrappers that log each invocation
// (proof of "one process per batch") and can be told to fail.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Sandbox } from '../env/sandbox';

export type Kind = 'ipset' | 'nftables' | 'firewalld';

export const CHILD = path.join(__dirname, 'firewall-child.js');

export async function childRun(sb: Sandbox, spec: object, timeoutMs = 120_000): Promise<any> {
  const r = await sb.run([process.execPath, CHILD, JSON.stringify(spec)], { net: 'server', timeoutMs });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line);
  } catch {
    throw new Error(`firewall child gave no JSON (exit ${r.code ?? r.signal}): ${r.stdout.slice(-500)} ${r.stderr.slice(-2000)}`);
  }
}

/** address -> remaining seconds, from the kernel set(s) of this backend. */
export async function kernelSet(sb: Sandbox, kind: Kind): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  if (kind === 'nftables') {
    const r = await sb.run(['nft', '-j', 'list', 'table', 'inet', 'tallow'], { net: 'server' });
    if (r.code !== 0) return out;
    for (const o of JSON.parse(r.stdout).nftables) {
      if (!o.set || !['tallow', 'tallow6'].includes(o.set.name)) continue;
      for (const el of o.set.elem ?? []) {
        if (typeof el === 'string') out.set(el, Infinity);
        else if (el.elem && typeof el.elem.val === 'string') out.set(el.elem.val, el.elem.expires);
        // else: a range or prefix of an administrator's interval set, not one of our bans
      }
    }
    return out;
  }
  const r = await sb.run(['ipset', 'list', '-o', 'save'], { net: 'server' });
  for (const line of r.stdout.split('\n')) {
    const w = line.trim().split(/\s+/);
    if (w[0] === 'add' && (w[1] === 'tallow' || w[1] === 'tallow6')) {
      const t = w.indexOf('timeout');
      out.set(w[2], t > 0 ? Number(w[t + 1]) : Infinity);
    }
  }
  return out;
}

/** Names of our sets present in the kernel. */
export async function kernelSets(sb: Sandbox, kind: Kind): Promise<string[]> {
  if (kind === 'nftables') {
    const r = await sb.run(['nft', '-j', 'list', 'sets'], { net: 'server' });
    return (JSON.parse(r.stdout).nftables as any[]).filter((o) => o.set && o.set.table === 'tallow').map((o) => o.set.name).sort();
  }
  const r = await sb.run(['ipset', 'list', '-n'], { net: 'server' });
  return r.stdout.split('\n').map((l) => l.trim()).filter((n) => n === 'tallow' || n === 'tallow6').sort();
}

/** How many of our DROP rules the kernel holds, per family. */
export async function dropRules(sb: Sandbox, kind: Kind): Promise<{ v4: number; v6: number }> {
  if (kind === 'nftables') {
    const r = await sb.run(['nft', 'list', 'table', 'inet', 'tallow'], { net: 'server' });
    if (r.code !== 0) return { v4: 0, v6: 0 };
    const count = (re: RegExp) => r.stdout.split('\n').filter((l) => re.test(l)).length;
    return { v4: count(/^\s*ip saddr @tallow drop\s*$/), v6: count(/^\s*ip6 saddr @tallow6 drop\s*$/) };
  }
  const count = async (tool: string, set: string) => {
    const r = await sb.run([tool, '-w', '-S'], { net: 'server' });
    return r.stdout.split('\n').filter((l) => l.includes(`--match-set ${set} src -j DROP`)).length;
  };
  return { v4: await count('iptables', 'tallow'), v6: await count('ip6tables', 'tallow6') };
}

/**
 * A folder of wrappers around the real tools: each call is appended to calls.log, and while the
 * file `fail` exists every call is refused (exit 1), like a broken or wedged tool.
 */
export function makeToolWrappers(dir: string): { bin: string; calls: () => string[]; fail: string } {
  const bin = path.join(dir, 'bin');
  fs.mkdirSync(bin, { recursive: true });
  const log = path.join(dir, 'calls.log');
  const fail = path.join(dir, 'fail');
  const real: Record<string, string> = {
    ipset: '/usr/sbin/ipset',
    iptables: '/usr/sbin/iptables',
    ip6tables: '/usr/sbin/ip6tables',
    nft: '/usr/sbin/nft',
    'firewall-cmd': '/usr/bin/firewall-cmd',
  };
  for (const [name, target] of Object.entries(real)) {
    const script =
      `#!/bin/sh\necho "${name} $*" | cut -c1-200 >> ${log}\nif [ -e ${fail} ]; then echo "${name}: refused by the test" >&2; exit 1; fi\n` +
      `exec ${target} "$@"\n`;
    fs.writeFileSync(path.join(bin, name), script, { mode: 0o755 });
  }
  return {
    bin,
    fail,
    calls: () => (fs.existsSync(log) ? fs.readFileSync(log, 'utf8').split('\n').filter(Boolean) : []),
  };
}
