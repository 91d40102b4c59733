// Time per entry for crafted 64 KiB messages against every shipped pattern (regex run directly: the
// matcher itself skips messages over its 8 KiB cap), and the same at the cap through the matcher.
// Run: npx tsc -p . && node dist/bench/redos.js
import { compilePattern, loadPatternFiles, shippedPatternsDir, MAX_MESSAGE_LENGTH } from '../src/patterns';

const files = loadPatternFiles(shippedPatternsDir(), '/nonexistent-tallow-patterns');
const BODIES = [' from 203.0.113.9 port 22 ssh2', 'a', ':', '1.', ' for ', '0:', "' from ", ' 203.0.113.9 port 22 [preauth]', ' because ', ': ',
  '[203.0.113.9]:22 ', ' via ', 'port 1:2: ', ' user '];
/** The literal start of a pattern, past the optional relay prefix and error:/fatal: of the shipped files. */
function head(source: string): string {
  return source.replace(/^\^/, '').replace('(?:\\[ID \\d+ [a-z0-9]+\\.[a-z]+\\] )?', '').replace(/^\(\?:(error|fatal): \)\?/, '$1: ').split(/[\\(<[.]/)[0];
}
for (const size of [MAX_MESSAGE_LENGTH, 64 * 1024]) {
  let worst = 0;
  let worstName = '';
  let total = 0;
  let runs = 0;
  for (const f of files) {
    for (const p of f.patterns) {
      const re = compilePattern(p.source).regex;
      for (const b of BODIES) {
        const text = (head(p.source) + b.repeat(Math.ceil(size / b.length))).slice(0, size - 1) + '!';
        const t0 = process.hrtime.bigint();
        re.test(text);
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        total += ms;
        runs++;
        if (ms > worst) (worst = ms), (worstName = `${p.name} with '${b}'`);
      }
    }
  }
  console.log(`${size} B crafted messages: ${runs} runs, mean ${(total / runs).toFixed(3)} ms, worst ${worst.toFixed(3)} ms (${worstName})`);
}
