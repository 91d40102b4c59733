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
import type { Rule } from './rule';
import { resolveRules, type RuleBlock } from './rules';

export interface Engine {
  config: Config;
  /** every block as loaded (disabled rules' and override blocks included) */
  files: PatternFile[];
  /** every rule, enabled or not */
  rules: Rule[];
  /** the enabled rules' blocks: the only ones matched, and the only ones the journal is read for */
  blocks: RuleBlock[];
  allowlist: Allowlist;
  matcher: Matcher;
  /** sd-journal match groups: the union of the enabled blocks' filters */
  matches: MatchGroup[];
  /** the journal fields the matcher reads */
  fields: string[];
}

/** From a config and pattern files already loaded; throws ConfigError for a bad allowlist, PatternError for bad rules. */
export function makeEngine(config: Config, files: PatternFile[], metrics: Metrics = new Metrics()): Engine {
  let allowlist: Allowlist;
  try {
    allowlist = new Allowlist(config.whitelist);
  } catch (e) {
    throw new ConfigError(`${config.file ?? 'built-in defaults'}: whitelist: ${errText(e)}`);
  }
  const actions = { names: (config.actionDefs ?? []).map((a) => a.name), file: config.file ?? 'built-in defaults' };
  const { rules, blocks: all } = resolveRules(files, { threshold: config.threshold, expires: config.expires, actions });
  // A disabled rule costs nothing per entry: the matcher and the journal never see its blocks.
  const blocks = all.filter((b) => b.rule.enabled);
  return { config, files, rules, blocks, allowlist, matcher: new Matcher(blocks, metrics), matches: journalMatches(blocks), fields: neededFields(blocks) };
}

/** tallow.conf, then the shipped patterns and patterns_dir; throws ConfigError/PatternError (exit 78). */
export function loadEngine(configFile: string, explicit: boolean, shippedPatterns: string = shippedPatternsDir(), metrics?: Metrics): Engine {
  const config = loadConfig(configFile, explicit);
  return makeEngine(config, loadPatternFiles(shippedPatterns, config.patternsDir), metrics);
}

