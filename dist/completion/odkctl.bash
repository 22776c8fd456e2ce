# SPDX-License-Identifier: MIT
# bash completion for odkctl (installed as share/bash-completion/completions/odkctl)

# Bundle ids of the running instances, from the odkd the command line names.
_odkctl_bundles()
{
    local i sd=()
    for ((i = 1; i < cword; i++)); do
        if [[ ${words[i]} == --state-dir ]]; then
            sd=(--state-dir "${words[i + 1]}")
        fi
    done
    odkctl "${sd[@]}" list 2>/dev/null | awk 'NR > 1 { print $2 }' | sort -u
}

_odkctl()
{
    local cur prev words cword
    if declare -F _init_completion >/dev/null; then
        _init_completion || return
    else
        cur=${COMP_WORDS[COMP_CWORD]}
        prev=${COMP_WORDS[COMP_CWORD - 1]}
        words=("${COMP_WORDS[@]}")
        cword=$COMP_CWORD
    fi

    local commands="list tree find match sim install uninstall restart log crashes power debug call new"

    if [[ $prev == --state-dir ]]; then
        COMPREPLY=($(compgen -d -- "$cur"))
        return
    fi

    # The command is the first word that is not an option (or its value).
    local i cmd= cmd_at=0
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
        --state-dir) ((i++)) ;;
        -*) ;;
        *) cmd=${words[i]}; cmd_at=$i; break ;;
        esac
    done

    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "--state-dir --json" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        fi
        return
    fi

    local arg=$((cword - cmd_at))
    case $cmd in
    sim)
        ((arg == 1)) && COMPREPLY=($(compgen -W "plug unplug" -- "$cur")) ;;
    power)
        ((arg == 1)) && COMPREPLY=($(compgen -W "sleep wake" -- "$cur")) ;;
    match)
        ((arg == 1)) && COMPREPLY=($(compgen -W "--explain" -- "$cur")) ;;
    install)
        ((arg == 1)) && COMPREPLY=($(compgen -d -- "$cur")) ;;
    uninstall | restart | log | debug)
        ((arg == 1)) && COMPREPLY=($(compgen -W "$(_odkctl_bundles)" -- "$cur")) ;;
    call)
        [[ $cur == -* ]] && COMPREPLY=($(compgen -W "--struct --scalars-out --struct-out" -- "$cur")) ;;
    list | tree | crashes)
        COMPREPLY=($(compgen -W "--json" -- "$cur")) ;;
    esac
}
complete -F _odkctl odkctl
