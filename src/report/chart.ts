// Inline SVG charts for the HTML report: bans per bucket of the period (bars over time) and bans
// per rule (horizontal bars). Plain shapes and text with fixed colours, no scripts, no fonts or
// images to fetch; each bar carries its figure in a <title> (a tooltip, and what the browser test
// reads back). Every text is escaped by the caller's `esc`.
import { shortMinute, span } from './text';
import type { ReportData } from './types';

/** HTML-escaped, control and format characters (bidi overrides) shown as `?`. */
export const esc = (s: string): string => s.replace(/[\p{Cc}\p{Cf}]/gu, '?').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const W = 720;
const BAR_COLOUR = '#d1495b';
const AXIS = '#8c959f';
const LABEL = 'font-size="11" fill="#57606a" font-family="sans-serif"';

/** Bans per bucket: bar i at bucket i, y from 0 to the busiest bucket; a few time labels below. */
export function timelineSvg(d: ReportData): string {
  const bans = d.timeline.bans;
  const step = d.timeline.bucketSeconds * 1000;
  const H = 200;
  const left = 40;
  const top = 10;
  const plotW = W - left - 10;
  const plotH = 150;
  const max = Math.max(1, ...bans);
  const bw = plotW / bans.length;
  const gap = bw > 4 ? 1 : 0;
  const parts: string[] = [];
  parts.push(`<svg id="timeline-chart" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="bans per ${esc(span(step / 1000))}">`);
  parts.push(`<line x1="${left}" y1="${top + plotH}" x2="${W - 10}" y2="${top + plotH}" stroke="${AXIS}"/>`);
  parts.push(`<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotH}" stroke="${AXIS}"/>`);
  parts.push(`<text x="${left - 6}" y="${top + 4}" text-anchor="end" ${LABEL}>${Math.max(...bans, 0)}</text>`);
  parts.push(`<text x="${left - 6}" y="${top + plotH + 4}" text-anchor="end" ${LABEL}>0</text>`);
  bans.forEach((n, i) => {
    const start = d.period.since + i * step;
    const h = (n / max) * plotH;
    const x = (left + i * bw + gap / 2).toFixed(2);
    const title = `<title>${esc(shortMinute(start))} UTC: ${n} ${n === 1 ? 'ban' : 'bans'}</title>`;
    // Empty buckets keep a zero-height bar: every bucket is in the DOM with its figure.
    parts.push(`<rect class="bucket" data-start="${start}" data-bans="${n}" x="${x}" y="${(top + plotH - h).toFixed(2)}" width="${Math.max(0.5, bw - gap).toFixed(2)}" height="${h.toFixed(2)}" fill="${BAR_COLOUR}">${title}</rect>`);
  });
  // About six time labels, on bucket boundaries.
  const every = Math.max(1, Math.ceil(bans.length / 6));
  for (let i = 0; i < bans.length; i += every) {
    const x = left + i * bw;
    parts.push(`<line x1="${x.toFixed(2)}" y1="${top + plotH}" x2="${x.toFixed(2)}" y2="${top + plotH + 4}" stroke="${AXIS}"/>`);
    parts.push(`<text x="${x.toFixed(2)}" y="${top + plotH + 18}" text-anchor="start" ${LABEL}>${esc(shortMinute(d.period.since + i * step))}</text>`);
  }
  parts.push('</svg>');
  return parts.join('\n');
}

/** Bans per rule, the busiest rules first (at most `top`), with the previous period's figure beside. */
export function rulesSvg(d: ReportData): string {
  const rows = d.rules.filter((r) => r.bans > 0).slice(0, d.top);
  const rowH = 24;
  const labelW = 170;
  const H = rows.length * rowH + 10;
  const max = Math.max(1, ...rows.map((r) => r.bans));
  const barMax = W - labelW - 70;
  const parts = [`<svg id="rules-chart" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="bans per rule">`];
  rows.forEach((r, i) => {
    const y = 5 + i * rowH;
    const w = Math.max(1, (r.bans / max) * barMax);
    const name = r.rule.length > 26 ? `${r.rule.slice(0, 25)}…` : r.rule;
    parts.push(`<text x="${labelW - 8}" y="${y + 15}" text-anchor="end" ${LABEL}>${esc(name)}</text>`);
    parts.push(`<rect class="rule" data-bans="${r.bans}" x="${labelW}" y="${y + 3}" width="${w.toFixed(2)}" height="${rowH - 8}" fill="${BAR_COLOUR}"><title>${esc(r.rule)}: ${r.bans} ${r.bans === 1 ? 'ban' : 'bans'} (previous ${r.previousBans})</title></rect>`);
    parts.push(`<text x="${(labelW + w + 6).toFixed(2)}" y="${y + 15}" ${LABEL}>${r.bans}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n');
}
