// Many distinct documentation addresses for big batches: the three IPv4 test networks give 762
// usable hosts, the rest comes from 2001:db8::/32.
import type { Family } from '../../src/address';

export function manyAddresses(v4: number, v6: number): { address: string; family: Family }[] {
  const out: { address: string; family: Family }[] = [];
  const nets = ['192.0.2', '198.51.100', '203.0.113'];
  if (v4 > nets.length * 254) throw new Error(`only ${nets.length * 254} IPv4 documentation addresses exist, asked for ${v4}`);
  for (let i = 0; i < v4; i++) out.push({ address: `${nets[Math.floor(i / 254)]}.${(i % 254) + 1}`, family: 4 });
  for (let i = 0; i < v6; i++) {
    // Both middle groups non-zero, so the text is already canonical (RFC 5952) as the kernel prints it.
    const hi = Math.floor(i / 0xffff) + 1;
    const lo = (i % 0xffff) + 1;
    out.push({ address: `2001:db8:${hi.toString(16)}:${lo.toString(16)}::a`, family: 6 });
  }
  return out;
}
