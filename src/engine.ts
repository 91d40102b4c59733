// The engine of one configuration: tallow.conf, the pattern files, the allowlist and the matcher
// built from them, all or nothing. The daemon builds one at start and a new one on each reload;
// `tallow test` builds the same thing from its own options.
import { Allowlist } from './allowlist';
import { loadConfig, ConfigError, type Config } from './config';
import type { MatchGroup } from './journal';
import { Matcher } from './matcher';
import { errText } from './limits';
import { Metrics } from './metrics';
import { journalMatches, loadPatternFiles, neededFields, shippedPatternsDir, type PatternFile } from './patterns';
import type { TrackerOptions } from './tracker';

export interface Engine {
  config: Config;
  files: PatternFile[];
  allowlist: Allowlist;
  matcher: Matcher;
  /** sd-journal match groups: the union of every file's filter */
  matches: MatchGroup[];
  /** the journal fields the matcher reads */
  fields: string[];
}

/** From a config and pattern files already loaded; throws ConfigError for a bad allowlist. */
export function makeEngine(config: Config, files: PatternFile[], metrics: Metrics = new Metrics()): Engine {
  let allowlist: Allowlist;
  try {
    allowlist = new Allowlist(config.whitelist);
  } catch (e) {
    throw new ConfigError(`${config.file ?? 'built-in defaults'}: whitelist: ${errText(e)}`);
  }
  return { config, files, allowlist, matcher: new Matcher(files, metrics), matches: journalMatches(files), fields: neededFields(files) };
}

/** tallow.conf, then the shipped patterns and patterns_dir; throws ConfigError/PatternError (exit 78). */
export function loadEngine(configFile: string, explicit: boolean, shippedPatterns: string = shippedPatternsDir(), metrics?: Metrics): Engine {
  const config = loadConfig(configFile, explicit);
  return makeEngine(config, loadPatternFiles(shippedPatterns, config.patternsDir), metrics);
}

export function trackerOptions(e: Engine, bannedUntil: (address: string) => number): TrackerOptions {
  const allow = e.allowlist;
  return {
    threshold: e.config.threshold,
    expires: e.config.expires,
    maxRecords: e.config.maxRecords,
    isAllowed: (address, family) => allow.has(address, family),
    bannedUntil,
  };
}
