// Reading the kernel's own view in a test's server namespace, without the code under test:
// `ipset list -o save`, `nft -j`, `iptables -S`. Plus tool wrappers that log each invocation
// (proof of "one process per batch") and can be told to fail, and the sandbox every firewall
// test file starts from (server namespace with TCP listeners, firewalld when the backend is it).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createSandbox, waitFor, type Sandbox } from '../env/sandbox';

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

/**
 * A sandbox for one backend: server and client namespaces (firewalld running in the server's
 * when `kind` is firewalld), tool wrappers, and a dual-stack TCP listener on each port that the
 * client reaches before any ban. Destroyed again when something here fails.
 */
export async function firewallSandbox(kind: Kind, ports: number[] = [22]): Promise<{ sb: Sandbox; tools: ReturnType<typeof makeToolWrappers> }> {
  const sb = await createSandbox({ network: true, firewalld: kind === 'firewalld' });
  try {
    const tools = makeToolWrappers(path.join(sb.dir, 'fw'));
    if (kind === 'firewalld' && ports.some((p) => p !== 22)) {
      // firewalld's default zone lets only ssh in: the other ports, permanently (a reload keeps them).
      for (const p of ports) if (p !== 22) await sb.check(['firewall-cmd', '--permanent', `--add-port=${p}/tcp`], { net: 'server' });
      await sb.check(['firewall-cmd', '--reload'], { net: 'server' });
    }
    const code = `for (const port of ${JSON.stringify(ports)}) require('net').createServer((s)=>s.end()).listen({port,host:'::'})`;
    const srv = sb.spawn([process.execPath, '-e', code], { net: 'server' });
    srv.stdout!.resume();
    srv.stderr!.resume();
    for (const p of ports) await waitFor(`the client to reach port ${p}`, () => sb.canConnect(sb.client.v4, p, 1), 10_000, 100);
    return { sb, tools };
  } catch (e) {
    await sb.destroy();
    throw e;
  }
}

const OURS = /^tallow6?(_[A-Za-z0-9_]+)?$/;

/** Every one of our sets (tallow, tallow6, tallow_p22, ...) -> its elements (address or network -> remaining seconds). */
export async function kernelScopeSets(sb: Sandbox, kind: Kind): Promise<Map<string, Map<string, number>>> {
  const out = new Map<string, Map<string, number>>();
  if (kind === 'nftables') {
    const r = await sb.run(['nft', '-j', 'list', 'table', 'inet', 'tallow'], { net: 'server' });
    if (r.code !== 0) return out;
    for (const o of JSON.parse(r.stdout).nftables) {
      if (!o.set || !OURS.test(o.set.name)) continue;
      const m = new Map<string, number>();
      out.set(o.set.name, m);
      for (const el of o.set.elem ?? []) {
        const val = el.elem ? el.elem.val : el;
        const text = typeof val === 'string' ? val : val && val.prefix ? `${val.prefix.addr}/${val.prefix.len}` : null;
        if (text) m.set(text, el.elem && typeof el.elem.expires === 'number' ? el.elem.expires : Infinity);
      }
    }
    return out;
  }
  const r = await sb.run(['ipset', 'list', '-o', 'save'], { net: 'server' });
  for (const line of r.stdout.split('\n')) {
    const w = line.trim().split(/\s+/);
    if (!OURS.test(w[1] ?? '')) continue;
    if (w[0] === 'create') out.set(w[1], out.get(w[1]) ?? new Map());
    if (w[0] === 'add') {
      const t = w.indexOf('timeout');
      (out.get(w[1]) ?? out.set(w[1], new Map()).get(w[1])!).set(w[2], t > 0 ? Number(w[t + 1]) : Infinity);
    }
  }
  return out;
}

/** Our DROP rules as the kernel lists them (`iptables -S` / `nft list`), one text line each. */
export async function dropRuleLines(sb: Sandbox, kind: Kind): Promise<string[]> {
  if (kind === 'nftables') {
    const r = await sb.run(['nft', 'list', 'chain', 'inet', 'tallow', 'input'], { net: 'server' });
    return r.code === 0 ? r.stdout.split('\n').map((l) => l.trim()).filter((l) => / saddr @tallow/.test(l) && / drop$/.test(l)) : [];
  }
  const out: string[] = [];
  for (const tool of ['iptables', 'ip6tables']) {
    const r = await sb.run([tool, '-w', '-S'], { net: 'server' });
    for (const l of r.stdout.split('\n')) if (/--match-set tallow\S* src -j DROP/.test(l)) out.push(`${tool} ${l.trim()}`);
  }
  return out;
}

/** Empties every set of ours (the state left by an earlier test), from outside. */
export async function emptyOurSets(sb: Sandbox, kind: Kind): Promise<void> {
  for (const name of (await kernelScopeSets(sb, kind)).keys()) {
    const argv = kind === 'nftables' ? ['nft', 'flush', 'set', 'inet', 'tallow', name] : ['ipset', 'flush', name];
    await sb.check(argv, { net: 'server' });
  }
}

/**
 * One more IPv6 address for the client (outside the sandbox's 2001:db8::/64), the server routing
 * back to it through the client's first address.
 */
export async function addClientV6(sb: Sandbox, address: string): Promise<void> {
  const links = await sb.check(['ip', '-o', 'link', 'show', 'type', 'veth'], { net: 'client' });
  const dev = /^\d+:\s+([^:@\s]+)/.exec(links)?.[1];
  if (!dev) throw new Error(`no veth in the client namespace: ${links}`);
  await sb.check(['ip', '-6', 'addr', 'add', `${address}/128`, 'dev', dev, 'nodad'], { net: 'client' });
  await sb.check(['ip', '-6', 'route', 'add', `${address}/128`, 'via', sb.client.v6], { net: 'server' });
}

/**
 * Which of these [source, port] pairs can open a TCP connection from the client namespace to the
 * server (its IPv4 or IPv6 address by the source's family)? One process tries them all at once,
 * so the refused ones cost one timeout together.
 */
export async function reachable(sb: Sandbox, pairs: [string, number][], timeoutSec = 1): Promise<Record<string, boolean>> {
  const tries = pairs.map(([source, port]) => ({ source, port, host: source.includes(':') ? sb.server.v6 : sb.server.v4 }));
  const code =
    `const net=require('net');const t=${JSON.stringify(tries)};` +
    `Promise.all(t.map((x)=>new Promise((res)=>{const s=net.connect({host:x.host,port:x.port,localAddress:x.source});` +
    `s.setTimeout(${timeoutSec * 1000},()=>{s.destroy();res(false)});s.on('connect',()=>{s.destroy();res(true)});s.on('error',()=>res(false));})))` +
    `.then((r)=>console.log(JSON.stringify(r)));`;
  const r = await sb.run([process.execPath, '-e', code], { net: 'client', timeoutMs: (timeoutSec + 10) * 1000 });
  const ok = JSON.parse(r.stdout.trim()) as boolean[];
  return Object.fromEntries(pairs.map(([a, p], i) => [`${a} ${p}`, ok[i]]));
}
