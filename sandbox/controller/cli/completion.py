"""`sandbox completion bash`: a bash completion script generated from the argument parser
itself, so every command, subcommand, fixed choice and option any module adds completes
without a second list to keep in step (and without a dependency such as argcomplete, whose
hook would start Python on every Tab)."""
from __future__ import annotations

import argparse


def _subparsers(parser: argparse.ArgumentParser) -> dict:
    for action in parser._actions:  # argparse has no public walk over its subcommands
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _words(parser: argparse.ArgumentParser) -> tuple[list[str], list[str], list[str]]:
    """(subcommands and fixed choices of positionals, options, options that take a value)."""
    words, options, valued = list(_subparsers(parser)), [], []
    for action in parser._actions:
        if action.option_strings:
            options += [o for o in action.option_strings if o.startswith("--") or len(action.option_strings) == 1]
            if action.nargs != 0:
                valued += action.option_strings
        elif action.choices and not isinstance(action, argparse._SubParsersAction):
            words += [str(c) for c in action.choices]
    return words, options, valued


def bash_script(parser: argparse.ArgumentParser) -> str:
    cases, valued_all = [], set()

    def add(key: str, p: argparse.ArgumentParser) -> None:
        words, options, valued = _words(p)
        valued_all.update(valued)
        cases.append(f'    "{key}") words="{" ".join(words)}"; opts="{" ".join(options)}" ;;')
        for name, child in _subparsers(p).items():
            add(f"{key} {name}".strip(), child)

    add("", parser)
    prog = parser.prog
    fn = "_" + prog.replace("-", "_")
    return "\n".join([
        f"# bash completion for {prog}: eval \"$({prog} completion bash)\" (or save it under",
        "# /etc/bash_completion.d/). Generated from the command's own parser.",
        f"{fn}() {{",
        '    local cur="${COMP_WORDS[COMP_CWORD]}" path="" prev_valued="" w i words opts',
        f'    local valued=" {" ".join(sorted(valued_all))} "',
        # The command path: the words before the cursor that are not options or their values.
        "    for ((i = 1; i < COMP_CWORD; i++)); do",
        '        w="${COMP_WORDS[i]}"',
        '        if [[ -n $prev_valued ]]; then prev_valued=""; continue; fi',
        '        if [[ $w == -* ]]; then [[ $valued == *" $w "* ]] && prev_valued=1; continue; fi',
        '        case "${path:+$path }$w" in',
        *[f"        {line.split(')')[0].strip()}) path=\"${{path:+$path }}$w\" ;;"
          for line in cases if line.split(")")[0].strip() != '""'],
        "        esac",
        "    done",
        '    case "$path" in',
        *cases,
        '    *) words=""; opts="" ;;',
        "    esac",
        '    if [[ $cur == -* ]]; then COMPREPLY=($(compgen -W "$opts" -- "$cur"));',
        '    else COMPREPLY=($(compgen -W "$words" -- "$cur")); fi',
        "}",
        f"complete -o default -o bashdefault -F {fn} {prog}",
        ""])


def cmd_completion(args) -> int:
    from sandbox.controller.cli import build_parser
    print(bash_script(build_parser()), end="")
    return 0
