#!/usr/bin/env bash
# End-to-end tests of the real qmix-quantize binary: the command-line contract, the seed
# examples, refusals and the guarantees (no partial output, input untouched, exit codes).
#   tests/e2e/cli_test.sh BIN_DIR
set -uo pipefail
bin=$(cd "${1:?usage: cli_test.sh BIN_DIR}" && pwd)
quantize=$bin/qmix-quantize
synth=$bin/qmix-synth
work=$(mktemp -d "${TMPDIR:-/tmp}/qmix-e2e.XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work" || exit 1
passed=0
failed=0

ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAILED: $*"; }

# expect STATUS PATTERN -- command...: runs it, checks the exit status and that stderr+stdout
# contain PATTERN (an extended regular expression; empty for none).
expect() {
  local status=$1 pattern=$2; shift 3
  local out actual
  out=$("$@" 2>&1); actual=$?
  if [ "$actual" != "$status" ]; then bad "$* -> exit $actual, expected $status: $(echo "$out" | tail -3)"; return; fi
  if [ -n "$pattern" ] && ! grep -Eq -- "$pattern" <<<"$out"; then
    bad "$* -> output lacks /$pattern/: $(echo "$out" | tail -3)"; return
  fi
  ok
}
no_leftovers() {  # DIR: no temporary file of ours left behind
  if ls -A "$1" | grep -q '\.qmix-'; then bad "temporary file left in $1: $(ls -A "$1")"; else ok; fi
}
same_bytes() { if cmp -s "$1" "$2"; then ok; else bad "$1 and $2 differ"; fi; }
absent() { if [ -e "$1" ]; then bad "$1 exists"; else ok; fi; }

"$synth" base.bin base f16 --layers 2 >/dev/null || { echo "qmix-synth failed"; exit 1; }
"$synth" tiny.bin tiny f16 --layers 2 >/dev/null || exit 1
"$synth" tiny32.bin tiny f32 --layers 1 >/dev/null || exit 1
cp base.bin base.orig
sum_before=$(md5sum base.bin | cut -d' ' -f1)

# --- the README's three examples
expect 0 "q8_0" -- "$quantize" --tensor-type 'encoder\..*=q8_0' --tensor-type '.*attn.*=q5_k' base.bin mixed.bin q4_k
expect 0 "header ftype: 2007 \(q8_0, the widest" -- "$quantize" --dry-run --tensor-type 'encoder\..*=q8_0' --tensor-type '.*attn.*=q5_k' base.bin mixed2.bin q4_k
expect 0 "needs a loader with per-tensor types.*its buffers: [0-9.]* MiB" -- "$quantize" --dry-run --tensor-type 'encoder\..*=q8_0' --tensor-type '.*attn.*=q5_k' base.bin mixed2.bin q4_k
absent mixed2.bin
expect 0 "q5_1" -- "$quantize" base.bin q51.bin 9
expect 0 "header ftype: 2009" -- "$quantize" --dry-run base.bin q51b.bin q5_1
printf '# attention precise\n.*attn.*=q8_0\n\n.*=q4_k\n' > rules.txt
expect 0 "dry run: nothing written" -- "$quantize" --tensor-type-file rules.txt --dry-run base.bin r.bin q4_0
absent r.bin

# --- the JSON report: strict RFC 8259 (no NaN/Infinity tokens, valid UTF-8), written with
# the model, and under --dry-run alone
json_ok() {  # FILE: parses strictly and describes every tensor
  python3 - "$1" <<'PY'
import json, sys
def refuse(token):
    raise ValueError("non-JSON number " + token)
report = json.loads(open(sys.argv[1], "rb").read().decode("utf-8"), parse_constant=refuse)
assert report["tensors"] and all("name" in t and "output_type" in t for t in report["tensors"])
PY
}
"$quantize" -q --stats --json report.json --tensor-type '.*attn.*=q5_k' base.bin rep.bin q4_k && json_ok report.json && ok || bad "--json with --stats"
"$quantize" -q --dry-run --json dry.json base.bin dry.bin q4_0 && json_ok dry.json && [ ! -e dry.bin ] && ok || bad "--json --dry-run"
rm -f report.json dry.json rep.bin

# --- numeric and named types give the same bytes; any thread count gives the same bytes
"$quantize" -q base.bin a.bin q5_1 && "$quantize" -q -t 1 base.bin b.bin 9 && same_bytes a.bin b.bin
"$quantize" -q -t 3 base.bin c.bin Q5_1 && same_bytes a.bin c.bin
"$quantize" -q -t 1 --tensor-type-file rules.txt base.bin d.bin q4_0 && \
  "$quantize" -q -t 2 --tensor-type-file rules.txt base.bin e.bin q4_0 && same_bytes d.bin e.bin

# --- fallback on tiny; --no-fallback as an error and as a preflight check
expect 0 "rows of 384: q4_k -> q5_0" -- "$quantize" tiny.bin tiny-q4k.bin q4_k
expect 0 "" -- "$bin/qmix-info" tiny-q4k.bin
expect 1 "cannot hold rows of 384" -- "$quantize" --no-fallback tiny.bin nf.bin q4_k
absent nf.bin
expect 1 "no-fallback" -- "$quantize" --no-fallback --dry-run tiny.bin nf.bin q4_k
expect 0 "" -- "$quantize" --no-fallback --dry-run base.bin nf.bin q4_k
# iq4_nl holds tiny's rows of 384 where q4_k cannot: no fallback, a uniform model (ftype 19)
expect 0 "header ftype: 2019 \(iq4_nl\)" -- "$quantize" --no-fallback tiny.bin tiny-iq4nl.bin iq4_nl
expect 0 "header ftype: 2019 \(iq4_nl\)" -- "$quantize" --dry-run tiny.bin x.bin 19
expect 0 "" -- "$bin/qmix-info" tiny-iq4nl.bin
expect 1 "iq4_xs cannot hold rows of 384" -- "$quantize" --no-fallback tiny.bin nf.bin iq4_xs
# iq4_xs falls back to iq4_nl (same levels, 32-value blocks); the mixed model's header
# takes q4_1, the narrowest type at least as wide that ggml does not repack
expect 0 "rows of 384: iq4_xs -> iq4_nl" -- "$quantize" --dry-run tiny.bin x.bin iq4_xs
expect 0 "header ftype: 2003 \(q4_1" -- "$quantize" --dry-run tiny.bin x.bin iq4_xs
expect 0 "header ftype: 2022 \(iq4_xs\)" -- "$quantize" --dry-run base.bin x.bin 22
expect 0 "header ftype: 2024 \(bf16\)" -- "$quantize" --dry-run base.bin x.bin bf16
expect 0 "" -- "$quantize" -q --tensor-type '.*mlp.*=iq4_xs' --tensor-type '.*=BF16' base.bin mix-iq.bin q8_0
expect 0 "mlp.0.weight .*iq4_xs" -- "$bin/qmix-info" mix-iq.bin
expect 0 "attn.query.weight .*bf16" -- "$bin/qmix-info" mix-iq.bin

# --- f16 / f32 targets, requantize
expect 0 "" -- "$quantize" -q tiny32.bin t16.bin f16

# --- size budget (--target-size / --target-bpw): the chosen types, kept as a rule file, give
# the same bytes; a budget out of reach writes nothing; the report carries the choice
expect 0 "budget \(--target-bpw 4.5\)" -- "$quantize" --dry-run --target-bpw 4.5 base.bin bud.bin
absent bud.bin
"$quantize" -q --dry-run --target-bpw 4.5 --tensor-type 'encoder\..*attn.*=q8_0' base.bin bud.bin > chosen.txt && \
  grep -q '^encoder\\\.\.\*attn\.\*=q8_0$' chosen.txt && ok || bad "--dry-run -q prints the rule file"
absent bud.bin
"$quantize" -q --target-bpw 4.5 --tensor-type 'encoder\..*attn.*=q8_0' --json bud.json base.bin bud.bin && \
  "$quantize" -q --tensor-type-file chosen.txt base.bin rules.bin f16 && same_bytes bud.bin rules.bin
python3 - bud.json base.bin <<'PY' && ok || bad "--json budget object"
import json, os, sys
r = json.load(open(sys.argv[1]))
b = r["budget"]
assert b["output_bytes"] <= b["budget_bytes"] and b["output_bytes"] == r["output_bytes"]
assert b["matrix_bits_per_weight"] <= 4.5 and b["lower_bound"] <= b["weighted_error"]
assert len(b["uniform"]) == 12 and r["loads_per_tensor"]
PY
[ "$(stat -c %s bud.bin)" = "$(python3 -c 'import json;print(json.load(open("bud.json"))["budget"]["output_bytes"])')" ] && ok || bad "budget output size"
expect 0 "" -- "$quantize" -q --target-size 40M --allow-types q4_k,q8_0,f16 --tensor-weight 'decoder\..*=2' base.bin bud2.bin
[ "$(stat -c %s bud2.bin)" -le 41943040 ] && ok || bad "--target-size 40M exceeded"
expect 1 "out of reach.*from [0-9]+ bytes" -- "$quantize" --target-size 1M base.bin far.bin
absent far.bin
expect 1 "out of reach.*bits per weight" -- "$quantize" --target-bpw 17 base.bin far.bin
absent far.bin
expect 2 "without TYPE" -- "$quantize" --target-bpw 4.5 base.bin far.bin q4_k
expect 2 "one budget" -- "$quantize" --target-bpw 4.5 --target-size 40M base.bin far.bin
expect 2 "only applies with a budget" -- "$quantize" --allow-types q4_k base.bin far.bin q4_k
expect 2 "target-size takes" -- "$quantize" --target-size 12X base.bin far.bin
expect 2 "f32 is no candidate" -- "$quantize" --target-bpw 5 --allow-types f32 base.bin far.bin
expect 2 "not a number" -- "$quantize" --target-bpw 5 --tensor-weight 'x=-1' base.bin far.bin
absent far.bin
rm -f bud.bin bud2.bin rules.bin bud.json chosen.txt

# --- where the output loads (whisper.cpp's loader rules; tests/test_loader.cpp states them)
expect 0 "loads in whisper.cpp .any version." -- "$quantize" tiny32.bin t32q.bin q4_0
expect 0 "where it loads: loads in whisper.cpp .any version." -- "$quantize" --info t32q.bin
expect 0 "loads in whisper.cpp .any version." -- "$quantize" --info t16.bin
expect 1 "encoder.blocks.0.mlp.2.weight: stored as q4_k" -- "$quantize" --loader upstream tiny.bin up.bin q4_k
absent up.bin
expect 0 "loads in whisper.cpp" -- "$quantize" --loader upstream tiny.bin up.bin q5_0
expect 2 "--loader takes" -- "$quantize" --loader sometimes tiny.bin up2.bin q5_0
expect 0 "header ftype: 2000" -- "$quantize" --tensor-type '.*mlp.*=f32' --dry-run tiny.bin x.bin q4_0
expect 1 "already quantized.*--allow-requantize" -- "$quantize" a.bin rq.bin q4_0
absent rq.bin
expect 0 "warning: [0-9]+ already-quantized tensor.*widened and quantized again" -- "$quantize" -q --allow-requantize a.bin rq.bin q4_0

# --- usage errors (exit 2): bad patterns, unknown types, bad options
expect 2 "bad regular expression.*encoder\.\(" -- "$quantize" --tensor-type 'encoder.(=q4_0' base.bin o.bin q4_0
# patterns std::regex backtracked on for hours finish at once; what an automaton cannot run
# is refused by name
expect 0 "dry run" -- timeout 60 "$quantize" --dry-run --tensor-type '(.*)*x=q8_0' \
  --tensor-type '(.+)+x=q8_0' --tensor-type '(.*){1,30}X=q8_0' --tensor-type '(|.)*X=q8_0' base.bin o.bin q4_0
expect 2 "back-reference" -- "$quantize" --tensor-type '(a)\1=q4_0' base.bin o.bin q4_0
expect 2 "look-ahead" -- "$quantize" --tensor-type 'a(?=b)b=q4_0' base.bin o.bin q4_0
expect 2 "unknown type 'q9_k'" -- "$quantize" --tensor-type '.*=q9_k' base.bin o.bin q4_0
expect 2 "unknown type" -- "$quantize" base.bin o.bin q7_0
expect 2 "not a quantized ftype" -- "$quantize" base.bin o.bin 5
expect 2 "not a quantized ftype" -- "$quantize" base.bin o.bin 24
expect 2 "PATTERN=TYPE" -- "$quantize" --tensor-type 'encoder' base.bin o.bin q4_0
printf '.*=q4_0\nbroken line\n' > broken.txt
expect 2 "broken.txt:2" -- "$quantize" --tensor-type-file broken.txt base.bin o.bin q4_0
expect 2 "cannot open the rule file" -- "$quantize" --tensor-type-file missing.txt base.bin o.bin q4_0
expect 2 "expected INPUT OUTPUT TYPE" -- "$quantize" base.bin o.bin
expect 2 "unknown option" -- "$quantize" --frobnicate base.bin o.bin q4_0
expect 2 "threads" -- "$quantize" -t 0 base.bin o.bin q4_0
expect 2 "threads" -- "$quantize" -t 99999999999 base.bin o.bin q4_0
expect 2 "threads" -- "$quantize" --threads abc base.bin o.bin q4_0
absent o.bin
expect 0 "usage: qmix-quantize" -- "$quantize" --help
expect 0 "q4_k" -- "$quantize" --list-types
expect 0 "qmix-quantize [0-9]" -- "$quantize" --version

# --- failures (exit 1): missing input, same file, output folder problems
expect 1 "missing.bin" -- "$quantize" missing.bin o.bin q4_0
expect 1 "input model itself" -- "$quantize" base.bin base.bin q4_0
ln -s base.bin link.bin
expect 1 "input model itself" -- "$quantize" base.bin link.bin q4_0
ln base.bin hard.bin
expect 1 "input model itself" -- "$quantize" hard.bin base.bin q4_0
rm -f hard.bin
expect 1 "" -- "$quantize" base.bin no/such/folder/o.bin q4_0
mkdir folder
expect 1 "folder" -- "$quantize" base.bin folder q4_0
head -c 100000 base.bin > truncated.bin
expect 1 "truncated.bin" -- "$quantize" truncated.bin o.bin q4_0
absent o.bin

# --- signals: SIGINT / SIGTERM mid-write leave nothing behind
for sig in INT TERM; do
  "$quantize" -q -t 1 --stats base.bin sig.bin q4_k &
  pid=$!
  sleep 0.3
  kill -s $sig $pid 2>/dev/null
  wait $pid; status=$?
  if [ -e sig.bin ] && [ $status -ne 0 ]; then bad "SIG$sig left sig.bin"; else ok; fi
  no_leftovers .
  rm -f sig.bin
done

# --- the input is never modified; nothing temporary is left anywhere
[ "$(md5sum base.bin | cut -d' ' -f1)" = "$sum_before" ] && ok || bad "base.bin changed"
same_bytes base.bin base.orig
no_leftovers .

echo "cli: $passed passed, $failed failed"
[ $failed -eq 0 ]
