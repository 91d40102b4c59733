// Runs the firewall module inside a test's network namespace and prints what happened as JSON.
// Usage: node firewall-child.js '<json>' where json = { config: Partial<Config>, options, steps }.
// Steps: start | flush | list | check | close | {ban:[[addr,family,seconds],...]} | {unban:[[addr,family]...]}
//        | {sleep: ms} | {exec: argv} (a change "from outside", e.g. ipset flush) | {waitLog: text, ms}
//        | {execCode: argv} (a look from outside, e.g. ipset test: its exit status in results)
//        | {banMany: {v4: n, v6: n, seconds}} | active
//        | {rawBan: [[addr,family,seconds],...]} (straight to the queue, past the ledger's refusals)
//        | {outcome: addr} | {trickle: {v4, v6, seconds, everyMs, killAt?}}
//        | {scopedBan: [[addr,family,seconds,scope],...]} | {scopedUnban: [[addr,family,scope],...]}
//          (bans in a scope, held beside the ledger's until the ledger keys bans by scope)
//        | {setScopes: Scope[]} (a reload with new rules) | {outcome: addr, scope}
// spec.scopes: the scopes the backend is made with (chooseBackend's; ALL_PORTS is always there).
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import type { Config } from '../../src/config';
import { defaultHistorySettings } from '../../src/history/settings';
import type { Family } from '../../src/address';
import type { Logger } from '../../src/log';
import { chooseBackend, Firewall, type FirewallOptions } from '../../src/firewall/index';
import { Ledger } from '../../src/ledger';
import { firewallListener } from '../../src/listeners/firewall';
import { manyAddresses } from './firewall-addresses';
import { banKey, type Scope } from '../../src/scope';
import type { HeldBan } from '../../src/firewall/probe';

type Step = string | Record<string, any>;

/** Our descendants running a firewall tool session (`ipset -`, `nft -i`): what a test kills from outside. */
function sessionPids(): number[] {
  const parent = new Map<number, number>();
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      parent.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      /* gone */
    }
  }
  const mine = (pid: number): boolean => {
    for (let p = parent.get(pid); p && p > 1; p = parent.get(p)) if (p === process.pid) return true;
    return false;
  };
  const out: number[] = [];
  for (const pid of parent.keys()) {
    if (!mine(pid)) continue;
    let argv: string[];
    try {
      argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    } catch {
      continue;
    }
    const tool = argv[0]?.split('/').pop();
    if ((tool === 'ipset' && argv[1] === '-') || (tool === 'nft' && argv[1] === '-i')) out.push(pid);
  }
  return out;
}

export function baseConfig(over: Partial<Config> = {}): Config {
  return {
    file: null,
    fwcmdPath: '/usr/bin',
    iptPath: '/usr/sbin',
    expires: 3600,
    whitelist: [],
    ipv6: true,
    nocreate: false,
    threshold: 1,
    backend: 'auto',
    nftPath: '/usr/sbin',
    maxelem: 1_000_000,
    maxRecords: 100_000,
    patternsDir: '/etc/tallow',
    stateDir: '/var/lib/tallow',
    socket: '/run/tallow.sock',
    metricsListen: '',
    metricsTextfile: '',
    ...defaultHistorySettings(), ...over,
  };
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.argv[2]) as { config?: Partial<Config>; options?: FirewallOptions; steps: Step[]; dryRun?: boolean; scopes?: Scope[] };
  const logs: { level: string; msg: string; fields?: Record<string, string>; at: number }[] = [];
  const mk = (level: string) => (msg: string, fields?: Record<string, string>) => {
    logs.push({ level, msg, fields, at: Date.now() });
  };
  const log: Logger = { info: mk('info'), warn: mk('warn'), error: mk('error'), debug: mk('debug') };
  const results: unknown[] = [];
  let fw: Firewall | null = null;
  // What onRefused reported: [address, family, reason, scope].
  const refused: [string, number, string, string][] = [];
  // Bans in scopes (by banKey), held for the queue's re-fill as the ledger will hold them.
  const scoped = new Map<string, HeldBan>();
  let printed = false;
  const out = (extra: Record<string, unknown>) => {
    printed = true;
    fs.writeSync(1, JSON.stringify({ results, logs, refused, ...extra }) + '\n');
  };
  // Nothing left to wait for (a promise no handle will settle): say where, instead of a silent exit 0.
  let current: Step = 'none';
  process.on('exit', () => {
    if (!printed) out({ ok: false, error: `exited with nothing left to run during step ${JSON.stringify(current)}`, errorName: 'EmptyLoop' });
  });
  try {
    const backend = await chooseBackend(baseConfig(spec.config), log, !!spec.dryRun, spec.scopes);
    // As the daemon wires it: the ledger holds the bans, its events reach the firewall queue.
    let listener: ReturnType<typeof firewallListener> | null = null;
    const ledger = new Ledger({ emit: (e) => listener!.handle([e]) });
    const held = function* (): Iterable<HeldBan> {
      yield* ledger.values();
      yield* scoped.values();
    };
    fw = new Firewall(backend, log, { ...spec.options, held, onRefused: (a, f, why, scope) => void refused.push([a, f, why, scope]) });
    listener = firewallListener(fw);
    const ban = (entries: { address: string; family: Family; seconds: number }[]) => {
      const now = Date.now();
      for (const e of entries) ledger.ban({ ...e, origin: 'manual', reason: 'manual', pattern: 'manual', score: 0, count: 0 }, now);
    };
    results.push({ backend: backend.name, describe: backend.describe() });
    for (const step of spec.steps) {
      current = step;
      const t0 = process.hrtime.bigint();
      const ms = () => Number(process.hrtime.bigint() - t0) / 1e6;
      if (step === 'start') {
        await fw.start();
        results.push({ start: ms() });
      } else if (step === 'flush') {
        await fw.flush();
        results.push({ flush: ms() });
      } else if (step === 'list') {
        results.push({ list: await fw.list() });
      } else if (step === 'check') {
        results.push({ check: await fw.backend.check() });
      } else if (step === 'active') {
        ledger.expire(Date.now());
        results.push({ active: [...ledger.values()].map((b) => [b.address, b.family, b.expiry - Date.now()]) });
      } else if (step === 'close') {
        await fw.close();
      } else if (typeof step === 'object' && step.ban) {
        ban((step.ban as [string, Family, number][]).map(([address, family, seconds]) => ({ address, family, seconds })));
      } else if (typeof step === 'object' && step.unban) {
        // As `tallow unban` does: an address the ledger does not hold is still removed from the kernel.
        for (const [address, family] of step.unban as [string, Family][]) if (!ledger.unban(address, 'manual', Date.now())) fw.unban([{ address, family }]);
      } else if (typeof step === 'object' && step.banMany) {
        const { v4, v6, seconds } = step.banMany as { v4: number; v6: number; seconds: number };
        ban(manyAddresses(v4, v6).map((a) => ({ ...a, seconds })));
        await fw.flush();
        results.push({ banMany: ms() });
      } else if (typeof step === 'object' && step.rawBan) {
        fw.ban((step.rawBan as [string, Family, number][]).map(([address, family, seconds]) => ({ address, family, seconds })));
      } else if (typeof step === 'object' && step.outcome) {
        results.push({ outcome: await fw.outcome(step.outcome, step.scope) });
      } else if (typeof step === 'object' && step.scopedBan) {
        const now = Date.now();
        const entries = (step.scopedBan as [string, Family, number, string][]).map(([address, family, seconds, scope]) => ({ address, family, seconds, scope }));
        for (const e of entries) scoped.set(banKey(e.address, e.scope), { address: e.address, family: e.family, scope: e.scope, expiry: now + e.seconds * 1000 });
        fw.ban(entries);
      } else if (typeof step === 'object' && step.scopedUnban) {
        const entries = (step.scopedUnban as [string, Family, string][]).map(([address, family, scope]) => ({ address, family, scope }));
        for (const e of entries) scoped.delete(banKey(e.address, e.scope));
        fw.unban(entries);
      } else if (typeof step === 'object' && step.setScopes) {
        await fw.setScopes(step.setScopes as Scope[]);
        results.push({ setScopes: ms() });
      } else if (typeof step === 'object' && step.trickle) {
        // Bans one by one, as a real attack decides them, everyMs apart.
        const { v4, v6, seconds, everyMs, killAt } = step.trickle as { v4: number; v6: number; seconds: number; everyMs: number; killAt?: number };
        const list = manyAddresses(v4, v6);
        const r: Record<string, unknown> = { trickle: list.length, killed: [] as number[] };
        for (let i = 0; i < list.length; i++) {
          if (i === 1) {
            // Did the first ban leave the queue (handed to the tool) before this second one is even
            // decided? Order, not time: a coalescing window would still hold it.
            r.firstSentBeforeSecond = fw.queued === 0;
          }
          if (i === killAt) {
            for (const pid of sessionPids()) {
              process.kill(pid, 'SIGKILL');
              (r.killed as number[]).push(pid);
            }
          }
          ban([{ ...list[i], seconds }]);
          await new Promise((res) => setTimeout(res, everyMs));
        }
        await fw.flush();
        r.ms = ms();
        results.push(r);
      } else if (typeof step === 'object' && step.sleep) {
        await new Promise((r) => setTimeout(r, step.sleep));
      } else if (typeof step === 'object' && step.exec) {
        const argv = step.exec as string[];
        execFileSync(argv[0], argv.slice(1), { stdio: 'ignore' });
      } else if (typeof step === 'object' && step.execCode) {
        const argv = step.execCode as string[];
        results.push({ execCode: spawnSync(argv[0], argv.slice(1), { stdio: 'ignore' }).status });
      } else if (typeof step === 'object' && step.waitLog) {
        const end = Date.now() + (step.ms ?? 10000);
        while (!logs.some((l) => l.msg.includes(step.waitLog)) && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
        results.push({ waitLog: step.waitLog, found: logs.some((l) => l.msg.includes(step.waitLog)) });
      } else {
        throw new Error(`unknown step ${JSON.stringify(step)}`);
      }
    }
    current = 'close';
    await fw.close();
    out({ ok: true });
  } catch (e) {
    if (fw) await fw.close();
    out({ ok: false, error: (e as Error).message, errorName: (e as Error).constructor.name });
  }
}

if (require.main === module) void main();
