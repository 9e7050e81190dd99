#!/usr/bin/env bash
# check_examples.sh: the JSON Schema and the C validator must agree on every example event.
#
#   BUILD=build tests/schema/check_examples.sh
#
# Every file in schemas/examples/valid/ must be accepted and every file in
# schemas/examples/invalid/ rejected, by both; the C message for an invalid
# example must contain the text schemas/examples/invalid/EXPECTED gives for it
# (lines: file.json<TAB>substring). Ends with "N passed, M failed"; exit 1 on
# any failure.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
BUILD=${BUILD:-build}
schema=schemas/change-event.v1.json
expected_file=schemas/examples/invalid/EXPECTED
validator=$BUILD/tools/validate_event
# Debian's interpreter: the one that has python3-jsonschema, whatever PATH says.
python=/usr/bin/python3

if [[ ! -x $validator ]]; then
    echo "check_examples: $validator is missing; run: make BUILD=$BUILD $validator" >&2
    exit 1
fi
if ! "$python" -c 'import jsonschema' 2>/dev/null; then
    echo "check_examples: $python lacks jsonschema (apt-get install python3-jsonschema)" >&2
    exit 1
fi

# The reference: Python's json plus jsonschema, with the parser held to what
# the contract's consumers can represent, as the C side is: NaN and Infinity
# are not JSON, integers must fit in 64 bits, and a number written with a
# fraction or exponent is not an integer (Decimal, not float, keeps 1.0 apart
# from 1 for the schema's "integer").
reference=$(cat <<'PY'
import decimal, json, math, sys
import jsonschema

def parse_int(text):
    n = int(text)
    if not -2**63 <= n < 2**64:
        raise ValueError("integer out of the 64-bit range")
    return n

def parse_float(text):
    if math.isinf(float(text)):
        raise ValueError("number out of the double range")
    return decimal.Decimal(text)

def parse_constant(name):
    raise ValueError(name + " is not JSON")

def one_line(text):
    return text.replace("\n", "\\n")

with open(sys.argv[1], encoding="utf-8") as f:
    schema = json.load(f)
cls = jsonschema.validators.validator_for(schema)
cls.check_schema(schema)
validator = cls(schema)
for path in sys.argv[2:]:
    try:
        with open(path, "rb") as f:
            event = json.loads(f.read().decode("utf-8"), parse_int=parse_int,
                               parse_float=parse_float,
                               parse_constant=parse_constant)
    except (ValueError, RecursionError) as e:
        print(f"{path}: invalid: malformed JSON: {one_line(str(e))}")
        continue
    error = jsonschema.exceptions.best_match(validator.iter_errors(event))
    if error is None:
        print(f"{path}: ok")
    else:
        where = "/".join(str(p) for p in error.absolute_path) or "event"
        print(f"{path}: invalid: {where}: {one_line(error.message)}")
PY
)

shopt -s nullglob
files=(schemas/examples/valid/*.json schemas/examples/invalid/*.json)
if ((${#files[@]} == 0)); then
    echo "check_examples: no examples found under schemas/examples" >&2
    exit 1
fi

# "PATH: ok" or "PATH: invalid: message", one line per file, into verdict
# maps keyed by path.
declare -A ref_verdict ref_message c_verdict c_message expected
# shellcheck disable=SC2034,SC2004 # writes through namerefs to associative arrays
read_verdicts() { # output, verdict map name, message map name
    local -n verdicts=$2 messages=$3
    local line path rest
    while IFS= read -r line; do
        path=${line%%: *}
        rest=${line#"$path: "}
        verdicts[$path]=${rest%%:*}
        if [[ $rest == invalid:* ]]; then
            messages[$path]=${rest#invalid: }
        fi
    done <<<"$1"
}
# Assignments, so that set -e stops here if either validator itself fails.
ref_out=$("$python" -c "$reference" "$schema" "${files[@]}")
c_out=$("$validator" "${files[@]}")
read_verdicts "$ref_out" ref_verdict ref_message
read_verdicts "$c_out" c_verdict c_message

while IFS=$'\t' read -r name substring; do
    [[ -z $name || $name == \#* ]] && continue
    expected[schemas/examples/invalid/$name]=$substring
done <"$expected_file"

passed=0
failed=0
fail() {
    echo "FAIL $1: $2"
    echo "     reference: ${ref_verdict[$1]:-no verdict}${ref_message[$1]:+ (${ref_message[$1]})}"
    echo "     C:         ${c_verdict[$1]:-no verdict}${c_message[$1]:+ (${c_message[$1]})}"
    failed=$((failed + 1))
}

for f in "${files[@]}"; do
    want=ok
    [[ $f == schemas/examples/invalid/* ]] && want=invalid
    ref=${ref_verdict[$f]:-}
    c=${c_verdict[$f]:-}
    if [[ $ref != "$c" ]]; then
        fail "$f" "the validators disagree"
    elif [[ $c != "$want" ]]; then
        fail "$f" "both say $c, expected $want"
    elif [[ $want == invalid && -z ${expected[$f]:-} ]]; then
        fail "$f" "no line for it in $expected_file"
    elif [[ $want == invalid && ${c_message[$f]} != *"${expected[$f]}"* ]]; then
        fail "$f" "the C message does not contain \"${expected[$f]}\""
    else
        passed=$((passed + 1))
    fi
done

for f in "${!expected[@]}"; do
    if [[ ! -e $f ]]; then
        echo "FAIL $expected_file names $f, which does not exist"
        failed=$((failed + 1))
    fi
done

echo "$passed passed, $failed failed"
((failed == 0))
