// The report in its three forms from one read of the history: what `tallow report` prints and
// what a daily mail carries (text part, HTML part; the JSON for scripts and webhooks).
import type { HistoryStore } from '../history/store';
import { reportData, type ReportOptions } from './data';
import { reportHtml } from './html';
import { reportText } from './text';
import type { ReportData } from './types';

export interface Report {
  data: ReportData;
  text: string;
  html: string;
  /** `data` as indented JSON, with a final newline */
  json: string;
}

/** The report of [since, until) (ms) from an open or openable store; it is not closed here. */
export async function buildReport(store: HistoryStore, since: number, until: number, opts: ReportOptions = {}): Promise<Report> {
  const data = await reportData(store, since, until, opts);
  return { data, text: reportText(data), html: reportHtml(data), json: JSON.stringify(data, null, 2) + '\n' };
}

export type { ReportData } from './types';
export type { ReportOptions } from './data';
