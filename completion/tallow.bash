# bash completion for tallow(8): subcommands, their options, and from the running daemon the rule
# names (`tallow rules`) and the banned addresses (`tallow list`). Installed as
# /usr/share/bash-completion/completions/tallow; self-contained (works without bash-completion's
# helpers, e.g. `source completion/tallow.bash`). completion/_tallow (zsh) offers the same words: keep
# the two in step.

# The running daemon, asked with the --socket/--config given on the line; silent when it cannot
# be reached (not root, not running).
_tallow_ask() {
  local -a conn=()
  local i w
  for ((i = 1; i < ${#COMP_WORDS[@]}; i++)); do
    w=${COMP_WORDS[i]}
    case "$w" in
      --socket=* | --config=*) conn+=("$w") ;;
      --socket | --config) [ $((i + 1)) -lt "$COMP_CWORD" ] && conn+=("$w" "${COMP_WORDS[i + 1]}") ;;
    esac
  done
  "${COMP_WORDS[0]}" "$@" "${conn[@]}" 2>/dev/null
}

# Rule names: the `rule NAME: enabled|disabled` lines of `tallow rules`.
_tallow_rules() {
  _tallow_ask rules | sed -n 's/^rule \([^ :]*\): .*/\1/p'
}

# Banned addresses and networks: the first column of `tallow list`, without its header.
_tallow_banned() {
  _tallow_ask list | awk 'NR > 1 && $1 != "" { print $1 }'
}

_tallow() {
  local cur=${COMP_WORDS[COMP_CWORD]}
  local prev=
  [ "$COMP_CWORD" -gt 0 ] && prev=${COMP_WORDS[COMP_CWORD - 1]}
  local commands='status list rules metrics ban unban allow reload get set version history report test'
  local conn='--socket --config --help'
  COMPREPLY=()

  # Option values.
  case "$prev" in
    --config | -c | --patterns | --socket)
      COMPREPLY=($(compgen -f -- "$cur"))
      return 0
      ;;
    --journal-dir | -D)
      COMPREPLY=($(compgen -d -- "$cur"))
      return 0
      ;;
    --format)
      COMPREPLY=($(compgen -W 'text json html' -- "$cur"))
      return 0
      ;;
    --rule)
      COMPREPLY=($(compgen -W "$(_tallow_rules)" -- "$cur"))
      return 0
      ;;
    --time | --since | --until | --limit | --top | --mail | --unit | --field)
      return 0
      ;;
  esac

  # The subcommand: the first word after the program that is not an option (or its value).
  local sub= i w
  for ((i = 1; i < COMP_CWORD; i++)); do
    w=${COMP_WORDS[i]}
    case "$w" in
      --config | -c | --journal-dir | -D | --socket) i=$((i + 1)) ;;
      -*) ;;
      *) sub=$w; break ;;
    esac
  done

  if [ -z "$sub" ]; then
    if [[ $cur == -* ]]; then
      COMPREPLY=($(compgen -W '--config --journal-dir --dry-run --verbose --help --version' -- "$cur"))
    else
      COMPREPLY=($(compgen -W "$commands" -- "$cur"))
    fi
    return 0
  fi

  local opts=$conn
  case "$sub" in
    status) opts+=' --json' ;;
    list) opts+=' --json --rule' ;;
    rules) opts+=' --json' ;;
    ban) opts+=' --time --rule' ;;
    unban) opts+=' --all' ;;
    allow) opts+=' --json' ;;
    history) opts+=' --since --rule --top --limit --json' ;;
    report) opts=' --since --until --format --top --mail --config --help' ;;
    test) opts=' --rule --unmatched --config --patterns --field --journal --since --unit --journal-dir --help' ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    return 0
  fi

  # Positional arguments: the words after the subcommand that are not options or their values.
  local -a args=()
  for ((i = i + 1; i < COMP_CWORD; i++)); do
    w=${COMP_WORDS[i]}
    case "$w" in
      --config | --socket | --time | --rule | --since | --until | --limit | --format | --mail | --patterns | --field | --unit | --journal-dir) i=$((i + 1)) ;;
      -*) ;;
      *) args+=("$w") ;;
    esac
  done
  case "$sub" in
    rules) [ ${#args[@]} -eq 0 ] && COMPREPLY=($(compgen -W "$(_tallow_rules)" -- "$cur")) ;;
    unban | history) [ ${#args[@]} -eq 0 ] && COMPREPLY=($(compgen -W "$(_tallow_banned)" -- "$cur")) ;;
    allow)
      if [ ${#args[@]} -eq 0 ]; then
        COMPREPLY=($(compgen -W 'add remove list' -- "$cur"))
      elif [ ${#args[@]} -eq 1 ] && [ "${args[0]}" = remove ]; then
        # What `allow add` put there: the entries `allow list` marks.
        COMPREPLY=($(compgen -W "$(_tallow_ask allow list | awk -F '\t' 'NF > 1 { print $1 }')" -- "$cur"))
      fi
      ;;
    test) COMPREPLY=($(compgen -f -- "$cur")) ;;
  esac
  return 0
}

complete -F _tallow tallow
