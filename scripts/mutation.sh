#!/bin/sh
# Mutation testing of the core modules with mutmut (docs/mutation.md), one module group at a time.
#
#   sh scripts/mutation.sh                  # every group, one after another
#   sh scripts/mutation.sh grading config   # only these groups
#
# Groups: motifs transcoders scoring config grading graphs (the table below: the files mutated and the fast
# tests that must kill their mutants). Each group runs in its own copy of the working tree under
# .mutation/<group>/ (mutmut reads its settings from pyproject.toml in the current directory; the copy's
# [tool.mutmut] section is rewritten for the group), niced, with one worker (MUTATION_JOBS to change it).
# MUTATION_NAMES="glob ..." limits the run to those mutant names (e.g. "r1interp.config.*check*"); mutants left
# out count as not checked, not as survivors.
# Survivors: `cd .mutation/<group> && mutmut results` and `mutmut show <name>`.
# A summary line per group goes to .mutation/summary.txt and stdout: killed / (every checked mutant), where a
# mutant no test reaches counts as surviving.
set -euf  # -f: mutant name globs reach mutmut unexpanded

ROOT=$(cd "$(dirname "$0")/.." && pwd)
JOBS=${MUTATION_JOBS:-1}
PY=${PYTHON:-python}

files_of() {
    case "$1" in
        motifs) echo "r1interp/motifs/census.py r1interp/motifs/nulls.py r1interp/motifs/signed.py r1interp/motifs/stats.py" ;;
        transcoders) echo "r1interp/transcoders/evaluate.py r1interp/transcoders/splice.py" ;;
        scoring) echo "r1interp/autointerp/scoring.py" ;;
        config) echo "r1interp/config.py" ;;
        grading) echo "r1interp/grading.py r1interp/reasoning/benchmark.py" ;;
        graphs) echo "r1interp/graphs/faithfulness.py r1interp/graphs/targets.py" ;;
        *) echo "unknown group: $1 (motifs transcoders scoring config grading graphs)" >&2; exit 2 ;;
    esac
}

tests_of() {
    case "$1" in
        motifs) echo "tests/test_motifs.py" ;;
        transcoders) echo "tests/test_transcoders.py tests/test_graphs.py" ;;
        scoring) echo "tests/test_autointerp.py" ;;
        config) echo "tests/test_config.py" ;;
        grading) echo "tests/test_behaviours.py tests/test_grading.py tests/test_experiment.py" ;;
        graphs) echo "tests/test_graphs.py" ;;
    esac
}

GROUPS_TO_RUN=${*:-motifs transcoders scoring config grading graphs}
mkdir -p "$ROOT/.mutation"
for group in $GROUPS_TO_RUN; do
    files=$(files_of "$group")
    tests=""
    for t in $(tests_of "$group"); do [ -e "$ROOT/$t" ] && tests="$tests $t"; done
    work="$ROOT/.mutation/$group"
    rm -rf "$work"
    mkdir -p "$work"
    # the working tree as git sees it (tracked and untracked-but-not-ignored files), without the venv or outputs
    (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} cp --parents {} "$work/")
    "$PY" - "$work/pyproject.toml" "$files" "$tests" <<'EOF'
import json, re, sys
path, files, tests = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
text = open(path).read()
head, _, tail = text.partition("[tool.mutmut]")
rest = re.search(r"^\[", tail, re.M)
tail = tail[rest.start():] if rest else ""
section = (
    "[tool.mutmut]\n"
    'source_paths = ["r1interp"]\n'
    f"only_mutate = {json.dumps(files)}\n"
    'also_copy = ["params.yaml", "dvc.yaml", "configs", "data", "scripts", "stages", "README.md", "docs", "constraints.txt"]\n'
    # -n 0: no xdist workers (addopts asks for two); mutmut maps tests to mutants only in its own process
    'pytest_add_cli_args = ["-m", "not slow", "-p", "no:cacheprovider", "-n", "0"]\n'
    f"pytest_add_cli_args_test_selection = {json.dumps(tests)}\n\n"
)
open(path, "w").write(head + section + tail)
EOF
    start=$(date +%s)
    # shellcheck disable=SC2086  # MUTATION_NAMES is a list of globs
    (cd "$work" && nice -n 19 mutmut run --max-children "$JOBS" ${MUTATION_NAMES:-} >"$work/run.log" 2>&1) || true
    (cd "$work" && mutmut results --all true >"$work/results.txt" 2>&1) || true
    "$PY" - "$group" "$work" "$(( $(date +%s) - start ))" <<'EOF' | tee -a "$ROOT/.mutation/summary.txt"
import collections, sys
group, work, seconds = sys.argv[1], sys.argv[2], sys.argv[3]
status = collections.Counter(line.rsplit(": ", 1)[1].strip() for line in open(f"{work}/results.txt") if ": " in line)
checked = sum(n for s, n in status.items() if s not in ("not checked", "skipped"))
if not checked:
    print(f"{group}: nothing checked (see {work}/run.log)")
    sys.exit(0)
killed = status["killed"] + status["timeout"]
print(f"{group}: {killed / checked:.1%} killed ({killed} of {checked} checked; "
      + ", ".join(f"{n} {s}" for s, n in sorted(status.items())) + f") in {seconds} s")
EOF
done
