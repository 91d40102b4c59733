// The allowlist's and never-ban's check per address (src/address-set.ts) against net.BlockList,
// which they used before: 100,000 canonical addresses (3/4 IPv4, 1/4 IPv6) against the shipped
// default allowlist, median of 7 rounds.   npm run build && node dist/bench/allowlist.js
import { BlockList } from 'node:net';
import { Allowlist, DEFAULT_ALLOWLIST } from '../src/allowlist';
import { specialAddress } from '../src/never-ban';

const N = 100_000;
const addrs: string[] = [];
for (let i = 0; i < N; i++) addrs.push(i % 4 ? `203.0.${(i >> 8) & 255}.${i & 255}` : `2001:db8:${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}::1`);
const fam = addrs.map((a) => (a.includes(':') ? 6 : 4) as 4 | 6);

const ref = new BlockList();
for (const e of new Allowlist([...DEFAULT_ALLOWLIST]).entries) {
  if (e.prefix === (e.family === 4 ? 32 : 128)) ref.addAddress(e.address, e.family === 4 ? 'ipv4' : 'ipv6');
  else ref.addSubnet(e.address, e.prefix, e.family === 4 ? 'ipv4' : 'ipv6');
}
const allow = new Allowlist([...DEFAULT_ALLOWLIST]);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const time = (f: () => number): number => {
  const t = process.hrtime.bigint();
  if (f() < 0) throw new Error('unreachable');
  return Number(process.hrtime.bigint() - t) / 1e6;
};
const rounds: Record<string, number[]> = { blocklist: [], addressSet: [], never: [] };
for (let r = 0; r < 7; r++) {
  rounds.blocklist.push(time(() => addrs.reduce((n, a, i) => n + (ref.check(a, fam[i] === 4 ? 'ipv4' : 'ipv6') ? 1 : 0), 0)));
  rounds.addressSet.push(time(() => addrs.reduce((n, a, i) => n + (allow.has(a, fam[i]) ? 1 : 0), 0)));
  rounds.never.push(time(() => addrs.reduce((n, a, i) => n + (specialAddress(a, fam[i]) ? 1 : 0), 0)));
}
console.log(`${N} checks against the default allowlist, median of 7: net.BlockList ${median(rounds.blocklist).toFixed(0)} ms, Allowlist (AddressSet) ${median(rounds.addressSet).toFixed(0)} ms; never-ban's fixed lists ${median(rounds.never).toFixed(0)} ms`);
