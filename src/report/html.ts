// The report as one self-contained HTML file (a mail's HTML part, or a file to open): inline CSS,
// inline SVG charts, no script, nothing to fetch (mail clients block remote content, and a report
// must not tell anyone it was opened). The same figures and sections as the text form. Every
// value that came from outside (addresses, pattern and rule names, user names) goes through esc().
import { esc, rulesSvg, timelineSvg } from './chart';
import { change, minute, span } from './text';
import type { ReportData, Totals } from './types';

const CSS = `
body{margin:0;padding:16px;background:#fff;color:#1f2328;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Arial,sans-serif}
main{max-width:760px;margin:0 auto}
h1{font-size:20px;margin:0 0 6px}
h2{font-size:16px;margin:26px 0 8px;padding-bottom:4px;border-bottom:1px solid #d0d7de}
p{margin:4px 0}
.muted{color:#57606a}
table{border-collapse:collapse;width:100%}
th,td{padding:3px 8px;text-align:left;border-bottom:1px solid #eaeef2;vertical-align:top}
th{font-weight:600;color:#57606a;font-size:12px;text-transform:uppercase}
.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.up{color:#b42318}.down{color:#067647}
.addr{font-family:ui-monospace,Menlo,Consolas,monospace;word-break:break-all}
svg{max-width:100%;height:auto;display:block}
`;

type Cell = { text: string; num?: boolean; cls?: string };
const c = (text: string | number, num = typeof text === 'number', cls?: string): Cell => ({ text: String(text), num, cls });

function table(id: string, head: Cell[], rows: Cell[][]): string {
  const cell = (tag: string, x: Cell) => {
    const cls = [x.num ? 'n' : '', x.cls ?? ''].filter(Boolean).join(' ');
    return `<${tag}${cls ? ` class="${cls}"` : ''}>${esc(x.text)}</${tag}>`;
  };
  return [
    `<table id="${id}">`,
    `<thead><tr>${head.map((h) => cell('th', h)).join('')}</tr></thead>`,
    '<tbody>',
    ...rows.map((r) => `<tr>${r.map((x) => cell('td', x)).join('')}</tr>`),
    '</tbody></table>',
  ].join('\n');
}

const none = (what = 'none'): string => `<p class="muted">${esc(what)}</p>`;

const TOTALS: [keyof Omit<Totals, 'unbansByReason' | 'matchesPastCap'>, string][] = [
  ['bans', 'bans'],
  ['unbans', 'unbans'],
  ['addressesBanned', 'addresses banned'],
  ['addressesSeen', 'addresses seen'],
  ['matches', 'matches'],
];

export function reportHtml(d: ReportData): string {
  const out: string[] = [];
  const h2 = (title: string) => out.push(`<h2>${esc(title)}</h2>`);
  const cur = d.totals.current;
  const prev = d.totals.previous;
  const title = `tallow report for ${d.host}`;

  out.push('<!DOCTYPE html>', '<html lang="en">', '<head>', '<meta charset="utf-8">', '<meta name="viewport" content="width=device-width, initial-scale=1">');
  out.push(`<title>${esc(title)}</title>`, `<style>${CSS}</style>`, '</head>', '<body>', '<main>');
  out.push(`<h1>${esc(title)}</h1>`);
  out.push(`<p id="period">period ${esc(minute(d.period.since))} to ${esc(minute(d.period.until))} UTC (${esc(span((d.period.until - d.period.since) / 1000))})</p>`);
  out.push(`<p id="previous" class="muted">compared with ${esc(minute(d.previous.since))} to ${esc(minute(d.previous.until))} UTC</p>`);

  h2('Summary');
  out.push(
    table(
      'summary',
      [c(''), c('this period', true), c('previous', true), c('change', true)],
      TOTALS.map(([k, label]) => [c(label, false), c(cur[k]), c(prev[k]), c(change(cur[k], prev[k]), true, cur[k] > prev[k] ? 'up' : cur[k] < prev[k] ? 'down' : '')]),
    ),
  );
  if (cur.unbans) {
    out.push(`<p id="unban-reasons" class="muted">unbans by reason: ${Object.entries(cur.unbansByReason).map(([k, n]) => `${esc(k)} ${n}`).join(', ')}</p>`);
  }

  h2(`Bans per ${d.timeline.bucketSeconds === 3600 ? 'hour' : span(d.timeline.bucketSeconds)} (UTC)`);
  out.push(cur.bans ? timelineSvg(d) : none('no bans in this period'));

  h2('Bans per rule');
  if (d.rules.length) {
    if (d.rules.some((r) => r.bans > 0)) out.push(rulesSvg(d));
    out.push(table('rules', [c('rule'), c('bans', true), c('previous', true), c('unbans', true)], d.rules.map((r) => [c(r.rule), c(r.bans), c(r.previousBans), c(r.unbans)])));
  } else out.push(none());

  h2('Top addresses');
  out.push(
    d.addresses.length
      ? table(
          'addresses',
          [c('address'), c('bans', true), c('matches', true), c('step', true), c('rules')],
          d.addresses.map((a) => [c(a.address, false, 'addr'), c(a.bans), c(a.matches), c(a.step), c(a.rules.join(', '))]),
        )
      : none(),
  );

  h2('Top networks');
  out.push(
    d.networks.length
      ? table('networks', [c('network'), c('bans', true), c('addresses', true), c('matches', true)], d.networks.map((n) => [c(n.network, false, 'addr'), c(n.bans), c(n.addresses), c(n.matches)]))
      : none(),
  );

  h2('Top patterns');
  out.push(
    d.patterns.length
      ? table('patterns', [c('pattern'), c('rule'), c('matches', true), c('bans', true)], d.patterns.map((p) => [c(p.pattern, false, 'addr'), c(p.rule), c(p.matches), c(p.bans)]))
      : none(),
  );
  if (cur.matchesPastCap) out.push(`<p id="past-cap" class="muted">${cur.matchesPastCap} more matches past history_matches_per_hour (their pattern is not kept)</p>`);

  const ro = d.repeatOffenders;
  h2(ro.total ? `Repeat offenders: ${ro.total} ${ro.total === 1 ? 'address' : 'addresses'} banned more than once${ro.total > ro.items.length ? ` (the ${ro.items.length} most banned)` : ''}` : 'Repeat offenders');
  out.push(
    ro.items.length
      ? table(
          'repeat',
          [c('address'), c('bans', true), c('steps'), c('durations')],
          ro.items.map((o) => [c(o.address, false, 'addr'), c(o.bans.length), c(o.bans.map((b) => b.step).join(' ')), c(o.bans.map((b) => span(b.seconds)).join(' '))]),
        )
      : none(),
  );

  h2('Logins seen by notify rules');
  const lg = d.logins;
  out.push(
    lg.items.length
      ? table(
          'logins',
          [c('time (UTC)'), c('user'), c('address'), c('method'), c('rule')],
          lg.items.map((l) => [c(minute(l.at)), c(l.user), c(l.address, false, 'addr'), c(l.method), c(l.rule)]),
        ) + (lg.total > lg.items.length ? `<p class="muted">the newest ${lg.items.length} of ${lg.total}</p>` : '')
      : none('none recorded'),
  );

  out.push('</main>', '</body>', '</html>', '');
  return out.join('\n');
}
