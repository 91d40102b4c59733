// Command-line options of the subcommands (`tallow list --json`, `tallow test --since X`):
// `--name value` and `--name=value` read the same way everywhere.

export class UsageError extends Error {}

export interface Option {
  /** the argument as given */
  arg: string;
  /** the argument without any `=value` */
  name: string;
  /** true when the argument carried its value inline (`--name=value`) */
  inline: boolean;
  /** the option's value: inline, or the next argument (consumed) */
  value(): string;
}

/** Walks `args` in order; value() consumes the next argument when the value is not inline. */
export function* readOptions(args: string[]): Generator<Option> {
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const eq = a.startsWith('--') ? a.indexOf('=') : -1;
    const name = eq > 0 ? a.slice(0, eq) : a;
    yield {
      arg: a,
      name,
      inline: eq > 0,
      value: (): string => {
        if (eq > 0) return a.slice(eq + 1);
        if (i + 1 >= args.length) throw new UsageError(`${name} needs a value`);
        return args[++i];
      },
    };
  }
}
