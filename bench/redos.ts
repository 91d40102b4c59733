// Time per entry for crafted 64 KiB messages against every shipped pattern (regex run directly: the
// matcher itself skips messages over its 8 KiB cap), and the same at the cap through the matcher.
// Run: npx tsc -p . && node dist/bench/redos.js
import { compilePattern, loadPatternFiles, shippedPatternsDir, MAX_MESSAGE_LENGTH } from '../src/patterns';

const files = loadPatternFiles(shippedPatternsDir(), '/nonexistent-tallow-patterns');
const BODIES = [' from 203.0.113.9 port 22 ssh2', 'a', ':', '1.', ' for ', '0:', "' from "];
for (const size of [MAX_MESSAGE_LENGTH, 64 * 1024]) {
  let worst = 0;
  let worstName = '';
  let total = 0;
  let runs = 0;
  for (const f of files) {
    for (const p of f.patterns) {
      const re = compilePattern(p.source).regex;
      const head = p.source.replace(/^\^/, '').split(/[\\(<[.]/)[0];
      for (const b of BODIES) {
        const text = (head + b.repeat(Math.ceil(size / b.length))).slice(0, size - 1) + '!';
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
