#!/usr/bin/env bash
# End-to-end bad-input suite for the real qmix-quantize binary:
#   tests/e2e/bad_input_test.sh BIN_DIR
# 1. every class of damaged model file the codec refuses, made by patching a small
#    synthetic model (qmix-synth tiny f16 --layers 1) at offsets read from its structure;
# 2. a hostile environment: output folder missing or read-only, output path a folder, disk
#    full, input deleted or truncated while being read, INPUT and OUTPUT the same file
#    through links, SIGINT/SIGTERM/SIGHUP mid-write, NaN and infinity in weights, absurd
#    thread counts;
# 3. resource bounds: hostile shapes (20 million vocabulary entries, one row of 2^25
#    values) stay under 96 MiB; a `small` f16 model (~480 MB) is quantized under a virtual memory
#    limit proportional to its largest tensor and the thread count, far below the file size
#    (the limit makes mmap fail, so this runs the reader's plain-read fallback), and its
#    peak resident set is measured in the normal memory-mapped mode.
# Every failing case checks the exit status, a message naming the cause, that neither the
# output nor a temporary file is left, and that the input's bytes (md5) are unchanged.
# A check that cannot run here prints SKIP and counts neither way.
# Environment: QMIX_BAD_INPUT_RESOURCE=0 skips part 3 (it writes ~1 GB and takes a while).
set -uo pipefail
bin=$(cd "${1:?usage: bad_input_test.sh BIN_DIR}" && pwd)
quantize=$bin/qmix-quantize
synth=$bin/qmix-synth
work=$(mktemp -d "${TMPDIR:-/tmp}/qmix-bad-input.XXXXXX")
chmod 755 "$work"  # the unprivileged-user check must be able to reach the input
background=()
cleanup() {
  for p in "${background[@]}"; do kill "$p" 2>/dev/null; done
  chattr -R -i "$work" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work" || exit 1
passed=0
failed=0
skipped=0

pass() { passed=$((passed + 1)); echo "  ok    $*"; }
fail() { failed=$((failed + 1)); echo "  FAIL  $*"; }
skip() { skipped=$((skipped + 1)); echo "  SKIP  $*"; }
md5() { md5sum "$1" 2>/dev/null | cut -d' ' -f1; }

# The binary under test may carry AddressSanitizer, whose shadow memory makes address-space
# limits and resident-set sizes meaningless.
sanitized=0
if ldd "$quantize" 2>/dev/null | grep -q 'libasan\|libtsan' ||
  grep -aq '__asan_init' "$quantize" 2>/dev/null; then
  sanitized=1
fi

# --- a model walker: offsets of every structural field, and byte patches ------------------
cat >model.py <<'PY'
import json, struct, sys
SIZES = {0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24),
         8: (32, 34), 9: (32, 36), 10: (256, 84), 11: (256, 110), 12: (256, 144),
         13: (256, 176), 14: (256, 210), 15: (256, 292)}

def walk(path):
    d = open(path, "rb").read()
    o = 4 + 11 * 4
    layout = {"mel": o}
    n_mel, n_fft = struct.unpack_from("<ii", d, o)
    o += 8 + 4 * n_mel * n_fft
    layout["vocab"] = o
    (count,) = struct.unpack_from("<i", d, o)
    o += 4
    layout["token0"] = o
    for _ in range(count):
        (length,) = struct.unpack_from("<I", d, o)
        o += 4 + length
    layout["tensors"] = o
    layout["size"] = len(d)
    tensors = {}
    while o < len(d):
        n_dims, name_length, type_id = struct.unpack_from("<iii", d, o)
        ne = list(struct.unpack_from("<%di" % n_dims, d, o + 12))
        start = o + 12 + 4 * n_dims
        name = d[start:start + name_length].decode()
        block, type_size = SIZES[type_id]
        rows = 1
        for e in ne[1:]:
            rows *= e
        size = ne[0] // block * type_size * rows
        tensors[name] = {"record": o, "name": start, "data": start + name_length,
                         "bytes": size, "type": type_id, "ne": ne}
        o = start + name_length + size
    layout["tensor"] = tensors
    return layout

def get(path, key):
    value = walk(path)
    for part in key.split(":"):
        value = value[int(part)] if isinstance(value, list) else value[part]
    return value

command = sys.argv[1]
if command == "get":  # get FILE KEY (e.g. tensor:encoder.conv1.weight:record)
    print(get(sys.argv[2], sys.argv[3]))
elif command == "largest":  # largest FILE: bytes of the largest tensor
    print(max(t["bytes"] for t in walk(sys.argv[2])["tensor"].values()))
elif command == "patch":  # patch FILE OFFSET FORMAT VALUE... (struct format, little-endian)
    path, offset, fmt = sys.argv[2], int(sys.argv[3]), sys.argv[4]
    values = [float(v) if fmt[-1] in "efd" else int(v, 0) for v in sys.argv[5:]]
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(struct.pack("<" + fmt, *values))
elif command == "text":  # text FILE OFFSET TEXT: overwrite bytes with TEXT
    with open(sys.argv[2], "r+b") as f:
        f.seek(int(sys.argv[3]))
        f.write(sys.argv[4].encode())
PY
py() { python3 "$work/model.py" "$@"; }

# --- the harness -----------------------------------------------------------------------
mkdir -p out
leftovers() {  # FOLDER...: temporary or output files left behind
  find "$@" -maxdepth 1 \( -name '.*.qmix-*' -o -name 'o.bin' \) 2>/dev/null
}

# refused NAME STATUS PATTERN INPUT [OPTIONS...]: quantizing INPUT to out/o.bin (q4_0) must
# exit with STATUS and print a message matching PATTERN (extended regex), leaving no output,
# no temporary file and the input unchanged.
refused() {
  local name=$1 status=$2 pattern=$3 input=$4
  shift 4
  local before text actual problems=""
  before=$(md5 "$input")
  text=$("$quantize" "$@" "$input" out/o.bin q4_0 2>&1)
  actual=$?
  [ "$actual" = "$status" ] || problems+=" exit $actual (expected $status);"
  echo "$text" | grep -Eq -- "$pattern" || problems+=" message lacks /$pattern/;"
  [ -z "$(leftovers out)" ] || problems+=" left $(leftovers out | tr '\n' ' ');"
  [ "$(md5 "$input")" = "$before" ] || problems+=" the input changed;"
  rm -f out/o.bin out/.*.qmix-* 2>/dev/null
  if [ -z "$problems" ]; then pass "$name"; else fail "$name:$problems $(echo "$text" | tail -n 2)"; fi
}

# damaged NAME PATTERN EDIT...: a copy of the model with EDIT applied (a shell command
# operating on the file "$f") must be refused with exit 1 and a message naming the file.
damaged() {
  local name=$1 pattern=$2
  shift 2
  local f="$work/damaged-${name// /-}.bin"
  cp model.bin "$f"
  (eval "$*") || { fail "$name: could not build the damaged file"; return; }
  refused "$name" 1 "$(basename "$f").*$pattern" "$f"
  rm -f "$f"
}

"$synth" model.bin tiny f16 --layers 1 >/dev/null || { echo "qmix-synth failed"; exit 1; }
model_md5=$(md5 model.bin)
mel=$(py get model.bin mel)
vocab=$(py get model.bin vocab)
token0=$(py get model.bin token0)
tensors=$(py get model.bin tensors)
size=$(py get model.bin size)
q=encoder.blocks.0.attn.query.weight  # 384 x 384 f16, a candidate
v=encoder.blocks.0.attn.value.weight  # same name length as $q
conv=encoder.conv1.weight             # 3 x 80 x 384 f16, three dimensions
q_record=$(py get model.bin "tensor:$q:record")
q_data=$(py get model.bin "tensor:$q:data")
v_name=$(py get model.bin "tensor:$v:name")
conv_record=$(py get model.bin "tensor:$conv:record")
first_record=$tensors

echo "== damaged files"
damaged "bad magic" "bad magic" 'py text $f 0 GGUF'
damaged "empty file" "truncated" ': >$f'
damaged "truncated in the magic" "truncated.*magic" 'truncate -s 2 $f'
damaged "truncated in the hyper-parameters" "truncated.*n_audio_head" 'truncate -s 17 $f'
damaged "truncated in the mel filters" "truncated.*mel filter values" "truncate -s $((mel + 8 + 100)) \$f"
damaged "truncated in the vocabulary count" "truncated.*vocabulary count" "truncate -s $((vocab + 2)) \$f"
# (past the 4 bytes per entry the count needs, so that the cut falls inside the entries)
damaged "truncated in a vocabulary entry" "truncated.*vocabulary entry [0-9]+" "truncate -s $((token0 + 300001)) \$f"
damaged "truncated in a tensor record" "truncated.*tensor record" "truncate -s $((first_record + 6)) \$f"
damaged "truncated in a tensor name" "truncated.*tensor name" "truncate -s $((q_record + 12 + 8 + 5)) \$f"
damaged "truncated in tensor data" "truncated.*runs past the end" "truncate -s $((q_data + 1000)) \$f"
damaged "truncated by one byte" "truncated" "truncate -s $((size - 1)) \$f"
damaged "trailing garbage" "truncated.*tensor record" 'printf "xyz" >>$f'
damaged "n_dims 0" "n_dims is 0, expected 1..4" "py patch \$f $q_record i 0"
damaged "n_dims 5" "n_dims is 5, expected 1..4" "py patch \$f $q_record i 5"
damaged "n_dims -1" "n_dims is -1, expected 1..4" "py patch \$f $q_record i -1"
damaged "zero extent" "extent ne\[1\] is 0" "py patch \$f $((q_record + 16)) i 0"
damaged "negative extent" "extent ne\[0\] is -384" "py patch \$f $((q_record + 12)) i -384"
damaged "overflowing extents" "overflows 64 bits" "py patch \$f $((conv_record + 12)) 3i 2147483647 2147483647 2147483647"
damaged "overflowing data size" "data size of f32 extents .* overflows 64 bits" "py patch \$f $((conv_record + 8)) 4i 0 2147483520 2147483647 1"
damaged "data past the end of the file" "runs past the end of the file" "py patch \$f $((q_record + 16)) i 100000"
damaged "negative name length" "name length is -1, expected 1..4096" "py patch \$f $((q_record + 4)) i -1"
damaged "huge name length" "name length is 1073741824" "py patch \$f $((q_record + 4)) i 1073741824"
damaged "zero name length" "name length is 0" "py patch \$f $((q_record + 4)) i 0"
damaged "vocabulary entry longer than the rest" "vocabulary entry 0 is 4294967295 bytes long" "py patch \$f $token0 I 0xffffffff"
damaged "vocabulary entry just past the end" "vocabulary entry 0 is $((size - token0 - 3)) bytes" "py patch \$f $token0 I $((size - token0 - 3))"
damaged "huge vocabulary count" "vocabulary count 2147483647 needs" "py patch \$f $vocab i 2147483647"
damaged "negative vocabulary count" "vocabulary count is -5" "py patch \$f $vocab i -5"
damaged "absurd mel filter size" "absurd mel filter size 100000" "py patch \$f $mel i 100000"
damaged "negative hyper-parameter" "n_audio_ctx is -1500" "py patch \$f 8 i -1500"
damaged "unknown type id 4" "unknown type id 4" "py patch \$f $((q_record + 8)) i 4"
damaged "unknown type id 99" "unknown type id 99" "py patch \$f $((q_record + 8)) i 99"
damaged "unknown type id -1" "unknown type id -1" "py patch \$f $((q_record + 8)) i -1"
damaged "row length a type cannot hold" "ne\[0\] = 3 cannot be stored as q4_0" "py patch \$f $((conv_record + 8)) i 2"
damaged "k-quant row of 384" "ne\[0\] = 384 cannot be stored as q4_k" "py patch \$f $((q_record + 8)) i 12"
damaged "duplicate tensor names" "duplicate tensor name '$q'" "py text \$f $v_name $q"
damaged "header ftype 5" "header ftype 5 is not a ggml file type" "py patch \$f 44 i 5"
damaged "header ftype -1" "header ftype -1 is not" "py patch \$f 44 i -1"
damaged "header ftype version 3" "header ftype 3007 is not" "py patch \$f 44 i 3007"
mkdir -p folder.bin
refused "input is a folder" 1 "folder.bin.*not a regular file" folder.bin
refused "input is missing" 1 "missing.bin.*No such file" missing.bin
refused "input is /dev/null" 1 "/dev/null.*not a regular file" /dev/null
[ "$(md5 model.bin)" = "$model_md5" ] && pass "the model itself is untouched" || fail "model.bin changed"

echo "== output problems"
expect_failure() {  # NAME STATUS PATTERN OUTPUT_FOLDER -- command...: status, message, no leftovers
  local name=$1 status=$2 pattern=$3 folder=$4
  shift 5
  local text actual problems=""
  text=$("$@" 2>&1)
  actual=$?
  [ "$actual" = "$status" ] || problems+=" exit $actual (expected $status);"
  echo "$text" | grep -Eq -- "$pattern" || problems+=" message lacks /$pattern/;"
  [ -z "$(leftovers "$folder")" ] || problems+=" left $(leftovers "$folder" | tr '\n' ' ');"
  [ "$(md5 model.bin)" = "$model_md5" ] || problems+=" the input changed;"
  if [ -z "$problems" ]; then pass "$name"; else fail "$name:$problems $(echo "$text" | tail -n 2)"; fi
}
expect_failure "output folder missing" 1 "no/such/folder.*cannot create a temporary file.*No such file" . -- \
  "$quantize" model.bin no/such/folder/o.bin q4_0
mkdir -p dir.bin
expect_failure "output path is a folder" 1 "dir.bin is a folder" . -- "$quantize" model.bin dir.bin q4_0
expect_failure "output path ends in a slash" 1 "not a file name" . -- "$quantize" model.bin new-folder/ q4_0

# Read-only output folder, three ways: a read-only bind mount (EROFS), an immutable folder
# (EPERM even for root) and a folder without write permission for an unprivileged user.
mkdir -p ro
if unshare -m true 2>/dev/null; then
  expect_failure "output folder on a read-only mount" 1 "ro/o.bin.*cannot create a temporary file.*Read-only file system" ro -- \
    unshare -m --propagation private sh -c \
    'mount --bind ro ro && mount -o remount,bind,ro ro && exec "$0" "$@"' "$quantize" model.bin ro/o.bin q4_0
else
  skip "output folder on a read-only mount (no mount namespace here)"
fi
mkdir -p immutable
if chattr +i immutable 2>/dev/null; then
  expect_failure "immutable output folder" 1 "immutable/o.bin.*cannot create a temporary file.*Operation not permitted" immutable -- \
    "$quantize" model.bin immutable/o.bin q4_0
  chattr -i immutable
else
  skip "immutable output folder (chattr +i is not supported here)"
fi
mkdir -p locked && chmod 555 locked && chmod 644 model.bin
if [ "$(id -u)" -ne 0 ]; then
  expect_failure "output folder without write permission" 1 "cannot create a temporary file.*Permission denied" locked -- \
    "$quantize" model.bin locked/o.bin q4_0
elif command -v setpriv >/dev/null && setpriv --reuid=65534 --regid=65534 --clear-groups true 2>/dev/null &&
  setpriv --reuid=65534 --regid=65534 --clear-groups test -r "$work/model.bin" -a -x "$quantize"; then
  expect_failure "output folder without write permission (as nobody)" 1 "cannot create a temporary file.*Permission denied" locked -- \
    setpriv --reuid=65534 --regid=65534 --clear-groups "$quantize" model.bin locked/o.bin q4_0
else
  skip "output folder without write permission (no unprivileged user to run as)"
fi

# Disk full: a file size limit (the write fails with EFBIG; SIGXFSZ must not kill the tool
# before it cleans up) and a real full file system (a 1 MB tmpfs, ENOSPC).
expect_failure "file size limit (ulimit -f)" 1 "out/o.bin.*writing failed.*File too large" out -- \
  bash -c 'ulimit -f 1024 && exec "$0" "$@"' "$quantize" model.bin out/o.bin q4_0
mkdir -p full
if unshare -m --propagation private sh -c 'mount -t tmpfs -o size=1m tmpfs full' 2>/dev/null; then
  expect_failure "disk full (1 MB tmpfs)" 1 "full/o.bin.*No space left on device" full -- \
    unshare -m --propagation private sh -c \
    'mount -t tmpfs -o size=1m tmpfs full && "$0" "$@"; status=$?; ls -A full | grep . && status=99; exit $status' \
    "$quantize" model.bin full/o.bin q4_0
else
  skip "disk full on a small tmpfs (cannot mount here)"
fi

echo "== the same file through links"
ln -s model.bin symlink.bin
ln model.bin hardlink.bin
expect_failure "OUTPUT is the input itself" 1 "input model itself" . -- "$quantize" model.bin model.bin q4_0
expect_failure "OUTPUT is a symbolic link to INPUT" 1 "input model itself" . -- "$quantize" model.bin symlink.bin q4_0
expect_failure "INPUT is a symbolic link to OUTPUT" 1 "input model itself" . -- "$quantize" symlink.bin model.bin q4_0
expect_failure "OUTPUT is a hard link to INPUT" 1 "input model itself" . -- "$quantize" model.bin hardlink.bin q4_0
expect_failure "OUTPUT through ./ and .." 1 "input model itself" . -- "$quantize" model.bin ./out/../model.bin q4_0
[ -L symlink.bin ] && [ "$(md5 hardlink.bin)" = "$model_md5" ] && pass "the links are intact" || fail "a link changed"
rm -f symlink.bin hardlink.bin

# check_json FILE: the report parses as strict JSON (RFC 8259: no NaN/Infinity tokens,
# valid UTF-8) and has the fields the README lists.
cat >check_json.py <<'PY'
import json, sys
def refuse(token):
    raise ValueError("non-JSON number " + token)
with open(sys.argv[1], "rb") as f:
    text = f.read().decode("utf-8")  # strict: invalid UTF-8 raises
report = json.loads(text, parse_constant=refuse)
for key in ("input", "output", "default_type", "dry_run", "header_ftype", "tensors"):
    assert key in report, "missing " + key
for t in report["tensors"]:
    for key in ("rmse", "max_abs_error"):
        assert key not in t or t[key] is None or isinstance(t[key], (int, float)), key
if len(sys.argv) > 2:  # an expression that must hold, over `report`
    assert eval(sys.argv[2]), sys.argv[2]
PY
check_json() {  # NAME FILE [PYTHON_CONDITION]
  local name=$1 file=$2 condition=${3:-}
  local problem
  if problem=$(python3 check_json.py "$file" ${condition:+"$condition"} 2>&1); then pass "$name"; else fail "$name: $(echo "$problem" | tail -n 1)"; fi
}

echo "== every file the tool writes"
ln -s model.bin symlink.bin
ln model.bin hardlink.bin
expect_failure "--json names the input" 1 "model.bin is the input model itself.*--json report" . -- \
  "$quantize" --json model.bin model.bin out/o.bin q4_0
expect_failure "--json names the input (--dry-run)" 1 "is the input model itself.*--json report" . -- \
  "$quantize" --dry-run --json model.bin model.bin out/o.bin q4_0
expect_failure "--json is a symbolic link to the input" 1 "symlink.bin is the input model itself" . -- \
  "$quantize" --json symlink.bin model.bin out/o.bin q4_0
expect_failure "--json is a hard link to the input" 1 "hardlink.bin is the input model itself" . -- \
  "$quantize" --json hardlink.bin model.bin out/o.bin q4_0
expect_failure "--json names OUTPUT" 1 "out/o.bin names both OUTPUT and the --json report" out -- \
  "$quantize" --json out/o.bin model.bin out/o.bin q4_0
expect_failure "--json names OUTPUT another way" 1 "names both OUTPUT and the --json report" out -- \
  "$quantize" --json ./out/../out/o.bin model.bin out/o.bin q4_0
[ -L symlink.bin ] && [ "$(md5 hardlink.bin)" = "$model_md5" ] && pass "the links are intact" || fail "a link changed"
rm -f symlink.bin hardlink.bin

# Special outputs, made in the work folder (never a real device): a FIFO is refused and
# stays a FIFO; a symbolic link is written through (README: Guarantees).
mkfifo out/fifo
expect_failure "OUTPUT is a FIFO" 1 "out/fifo is a FIFO" out -- "$quantize" model.bin out/fifo q4_0
expect_failure "--json is a FIFO" 1 "out/fifo is a FIFO" out -- "$quantize" --json out/fifo model.bin out/o.bin q4_0
[ -p out/fifo ] && pass "the FIFO is still a FIFO" || fail "the FIFO was replaced"
rm -f out/fifo
ln -s fifo-target out/dangling
expect_failure "OUTPUT is a dangling symbolic link" 1 "out/dangling: a symbolic link whose target cannot be written" out -- \
  "$quantize" model.bin out/dangling q4_0
[ -L out/dangling ] && pass "the dangling link stays" || fail "the dangling link was replaced"
rm -f out/dangling
mkdir -p out/real && echo "old" >out/real/target.bin && ln -s real/target.bin out/link.bin
"$quantize" -q model.bin out/direct.bin q4_0
if "$quantize" -q model.bin out/link.bin q4_0 && [ -L out/link.bin ] &&
  [ "$(readlink out/link.bin)" = real/target.bin ] && cmp -s out/real/target.bin out/direct.bin &&
  [ -z "$(leftovers out/real)" ]; then
  pass "OUTPUT a symbolic link: written through, the link stays"
else
  fail "OUTPUT a symbolic link: $(ls -la out out/real | tr '\n' ' ')"
fi
rm -rf out/real out/link.bin out/direct.bin

# The report is written beside its destination and committed with the model, all or none.
expect_failure "--json folder missing: no model either" 1 "no/such/r.json.*cannot create a temporary file" out -- \
  "$quantize" --json no/such/r.json model.bin out/o.bin q4_0
mkdir -p fullr
if unshare -m --propagation private sh -c 'mount -t tmpfs -o size=64k tmpfs fullr' 2>/dev/null; then
  expect_failure "--json on a full disk: no model either" 1 "fullr/r.json.*No space left on device" out -- \
    unshare -m --propagation private sh -c \
    'mount -t tmpfs -o size=64k tmpfs fullr && (dd if=/dev/zero of=fullr/fill bs=1k 2>/dev/null; true) &&
     "$0" "$@"; status=$?; ls -A fullr | grep -v "^fill$" && status=99; exit $status' \
    "$quantize" --json fullr/r.json model.bin out/o.bin q4_0
else
  skip "--json on a full disk (cannot mount here)"
fi
echo "old report" >out/r.json
expect_failure "file size limit hits the model: the old report stays" 1 "writing failed.*File too large" out -- \
  bash -c 'ulimit -f 1024 && exec "$0" "$@"' "$quantize" --json out/r.json model.bin out/o.bin q4_0
[ "$(cat out/r.json)" = "old report" ] && pass "the old report is unchanged" || fail "the report changed"
rm -f out/r.json

# Every report is valid JSON: NaN statistics are null, names that are not UTF-8 are
# replaced by U+FFFD.
cp model.bin nan.bin && py patch nan.bin $((q_data + 2000)) H 0x7e00
"$quantize" -q --allow-nonfinite --stats --json out/nan.json nan.bin out/nan-q.bin q4_0
check_json "report with NaN statistics is valid JSON (null)" out/nan.json \
  "any(t.get('rmse', 0) is None for t in report['tensors'])"
rm -f nan.bin out/nan-q.bin out/nan.json
latin1=$(printf 'caf\351')
cp model.bin "$latin1.bin"
"$quantize" -q --dry-run --json out/latin1.json "$latin1.bin" out/o.bin q4_0
check_json "report naming a non-UTF-8 path is valid JSON" out/latin1.json \
  "report['input'] == 'caf\ufffd.bin'"
rm -f "$latin1.bin" out/latin1.json
"$quantize" -q --stats --json out/r.json model.bin out/o.bin q4_0
check_json "report with statistics is valid JSON" out/r.json "len(report['tensors']) > 0"
rm -f out/o.bin out/r.json

echo "== exit status and output streams"
text=$("$quantize" model.bin out/piped.bin q4_0 | head -n 1)
status=${PIPESTATUS[0]}
[ "$status" = 0 ] && [ -f out/piped.bin ] && pass "| head -1: exit 0, model written" || fail "| head -1: exit $status"
"$quantize" --dry-run model.bin out/piped.bin q4_0 | head -c 10 >/dev/null
status=${PIPESTATUS[0]}
[ "$status" = 0 ] && pass "--dry-run | head -c 10: exit 0" || fail "--dry-run | head -c 10: exit $status"
"$quantize" --list-types | true
status=${PIPESTATUS[0]}
[ "$status" = 0 ] && pass "--list-types into a closed pipe: exit 0" || fail "--list-types into a closed pipe: exit $status"
rm -f out/piped.bin
if [ -w /dev/full ]; then
  expect_failure "stdout on a full disk (/dev/full)" 1 "writing to standard output failed: No space left" out -- \
    sh -c 'exec "$0" "$@" >/dev/full' "$quantize" --dry-run model.bin out/o.bin q4_0
else
  skip "stdout on a full disk (no /dev/full)"
fi
text=$("$quantize" -q --dry-run model.bin out/o.bin q4_0 2>&1)
[ -z "$text" ] && pass "--dry-run -q prints nothing" || fail "--dry-run -q printed $(echo "$text" | wc -l) lines"
cp model.bin ./-model.bin
if "$quantize" -q -- -model.bin out/-o.bin q4_0 && [ -f out/-o.bin ]; then pass "'--' ends the options"; else fail "'--' is not accepted"; fi
rm -f ./-model.bin out/-o.bin
printf '\357\273\277encoder\\..*=q8_0\n' >bom.txt
text=$("$quantize" --dry-run --tensor-type-file bom.txt model.bin out/o.bin q4_0 2>&1)
if [ $? = 0 ] && echo "$text" | grep -q "encoder.blocks.0.attn.query.weight.*q8_0" && ! echo "$text" | grep -q "matched no"; then
  pass "a rule file starting with a UTF-8 BOM"
else
  fail "a rule file starting with a UTF-8 BOM: $(echo "$text" | grep -m1 warning)"
fi
rm -f bom.txt

echo "== long names, synth limits, threads that cannot start"
for length in 200 243 250 255; do
  name=$(head -c "$length" /dev/zero | tr '\0' n)
  if "$quantize" -q model.bin "out/$name" q4_0 && [ -f "out/$name" ] && [ -z "$(leftovers out)" ]; then
    pass "OUTPUT base name of $length bytes"
  else
    fail "OUTPUT base name of $length bytes"
  fi
  rm -f "out/$name"
done
expect_failure "OUTPUT base name of 256 bytes" 1 "file name is 256 bytes long" out -- \
  "$quantize" model.bin "out/$(head -c 256 /dev/zero | tr '\0' n)" q4_0
expect_failure "qmix-synth past a file size limit" 1 "writing failed.*File too large" out -- \
  bash -c 'ulimit -f 100 && exec "$0" "$@"' "$synth" out/s.bin tiny f16 --layers 1
if [ $sanitized -eq 0 ]; then
  expect_failure "-t 1024 under ulimit -v: threads cannot start" 1 "cannot start worker thread.*try fewer threads" out -- \
    bash -c 'ulimit -v 400000 && exec "$0" "$@"' "$quantize" -t 1024 model.bin out/o.bin q4_0
else
  skip "-t 1024 under ulimit -v (address-space limits do not apply under AddressSanitizer)"
fi

echo "== NaN and infinity in weights"
nonfinite() {  # NAME HALF_BITS INDEX EXPECTED_WORD [second INDEX]
  local name=$1 bits=$2 index=$3 word=$4 second=${5:-}
  local f="$work/nonfinite.bin"
  cp model.bin "$f"
  py patch "$f" $((q_data + 2 * index)) H "$bits"
  [ -n "$second" ] && py patch "$f" $((q_data + 2 * second)) H "$bits"
  refused "$name" 1 "nonfinite.bin: tensor '$q'.*value $index is $word.*--allow-nonfinite" "$f" -t 2
  rm -f "$f"
}
nonfinite "NaN in an f16 matrix" 0x7e00 1000 NaN
nonfinite "+infinity in an f16 matrix" 0x7c00 5 infinite
nonfinite "-infinity in an f16 matrix" 0xfc00 147455 infinite
nonfinite "the first of two NaN is named" 0x7e00 7 NaN 140000
cp model.bin nan.bin && py patch nan.bin $((q_data + 2000)) H 0x7e00
if "$quantize" -q --allow-nonfinite nan.bin out/nan-q.bin q4_0 >/dev/null 2>&1 && [ -f out/nan-q.bin ]; then
  pass "--allow-nonfinite quantizes it anyway"
else
  fail "--allow-nonfinite refused the NaN model"
fi
rm -f out/nan-q.bin nan.bin
"$synth" model32.bin tiny f32 --layers 1 >/dev/null
cp model32.bin nan32.bin && py patch nan32.bin $(($(py get model32.bin "tensor:$q:data") + 4 * 42)) I 0x7fc00000
refused "NaN in an f32 matrix" 1 "tensor '$q'.*value 42 is NaN" nan32.bin
bias_data=$(py get model.bin "tensor:encoder.blocks.0.attn.query.bias:data")
cp model.bin nan-bias.bin && py patch nan-bias.bin $((bias_data + 8)) I 0x7fc00000
if "$quantize" -q nan-bias.bin out/bias.bin q4_0 >/dev/null 2>&1; then
  pass "NaN in a copied (1-D) tensor is left alone"
else
  fail "NaN in a copied tensor was refused"
fi
rm -f out/bias.bin nan-bias.bin nan32.bin model32.bin

echo "== absurd thread counts"
for t in 0 -1 1025 99999999999999999999 1e3 0x10 "" abc; do
  refused "--threads '$t'" 2 "threads takes a whole number from 1 to 1024" model.bin -t "$t"
done
"$quantize" -q -t 1 model.bin out/t1.bin q4_0
if "$quantize" -q -t 1024 model.bin out/t1024.bin q4_0 && cmp -s out/t1.bin out/t1024.bin; then
  pass "--threads 1024 works and gives the bytes of --threads 1"
else
  fail "--threads 1024"
fi
rm -f out/t1.bin out/t1024.bin

# --- a large model for the runs that must be interrupted, and for the resource bound ------
echo "== interrupted runs"
if ! "$synth" large.bin small f16 >/dev/null; then
  fail "qmix-synth large.bin small f16"
  echo "bad-input: $passed passed, $failed failed, $skipped skipped"
  exit 1
fi
large_md5=$(md5 large.bin)
large_size=$(stat -c %s large.bin)
large_header=$(py get large.bin tensors)
# Slow enough that the signal lands mid-write: one thread, statistics, and the scalar
# reference kernels (the SIMD ones finish this model in about a second).
slow=(-t 1 --stats)
export QMIX_FORCE_ARCH=scalar

# interrupted NAME SIGNAL STATUS: the signal arrives mid-write; the exit status is STATUS
# and nothing is left behind.
interrupted() {
  local name=$1 sig=$2 status=$3
  # The signal's default disposition, whatever this script inherited: under nohup (or a CI
  # runner that ignores SIGHUP) the tool rightly keeps an ignored SIGHUP ignored.
  env --default-signal="$sig" "$quantize" -q "${slow[@]}" large.bin out/sig.bin q4_k >/dev/null 2>&1 &
  local pid=$!
  background+=("$pid")
  sleep 1.5
  local wrote=0
  [ -n "$(leftovers out)" ] && wrote=1
  kill -s "$sig" "$pid" 2>/dev/null
  wait "$pid"
  local actual=$? problems=""
  [ "$wrote" = 1 ] || problems+=" no temporary file was being written when the signal came;"
  [ "$actual" = "$status" ] || problems+=" exit $actual (expected $status);"
  [ -z "$(leftovers out)" ] && [ ! -e out/sig.bin ] || problems+=" left $(ls -A out | tr '\n' ' ');"
  [ "$(md5 large.bin)" = "$large_md5" ] || problems+=" the input changed;"
  rm -f out/sig.bin out/.*.qmix-* 2>/dev/null
  if [ -z "$problems" ]; then pass "$name"; else fail "$name:$problems"; fi
}
interrupted "SIGINT mid-write" INT 130
interrupted "SIGTERM mid-write" TERM 143
interrupted "SIGHUP mid-write" HUP 129

# SIGKILL cannot be caught: the temporary stays. The next run that writes the same OUTPUT
# removes it (its process is gone, its lock free); a temporary of a running process stays.
"$quantize" -q "${slow[@]}" large.bin out/killed.bin q4_k >/dev/null 2>&1 &
pid=$!
background+=("$pid")
sleep 1.5
kill -s KILL "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
stale=$(find out -maxdepth 1 -name '.killed.bin.qmix-*')
"$quantize" -q "${slow[@]}" large.bin out/killed.bin q4_k >/dev/null 2>&1 &
pid=$!
background+=("$pid")
sleep 1.5
live=$(find out -maxdepth 1 -name '.killed.bin.qmix-*' ! -path "$stale")
QMIX_FORCE_ARCH= "$quantize" -q -t 2 model.bin out/killed.bin q4_0
if [ -n "$stale" ] && [ ! -e "$stale" ] && [ -n "$live" ] && [ -e "$live" ]; then
  pass "a stale temporary (SIGKILL) is removed by the next run, a live one is not"
else
  fail "stale temporaries: stale '$stale' $([ -e "$stale" ] && echo still there), live '$live' $([ -e "$live" ] || echo gone)"
fi
kill -s TERM "$pid" 2>/dev/null
wait "$pid" 2>/dev/null
rm -f out/killed.bin out/.killed.bin.qmix-* 2>/dev/null

# The input deleted while it is read: the mapping keeps the old file alive, so the run
# completes with the right bytes.
cp large.bin doomed.bin
"$quantize" -q -t 2 doomed.bin out/doomed.bin q8_0 >/dev/null 2>&1 &
pid=$!
background+=("$pid")
sleep 1
rm -f doomed.bin
wait "$pid"
status=$?
"$quantize" -q -t 2 large.bin out/reference.bin q8_0 >/dev/null 2>&1
if [ $status -eq 0 ] && cmp -s out/doomed.bin out/reference.bin; then
  pass "input deleted while being read: completes with the right bytes"
else
  fail "input deleted while being read: exit $status"
fi
rm -f out/doomed.bin out/reference.bin

# The input truncated while it is read. The tensor data is fetched with pread(), which
# reports the short read ("the file ended early"); a mapping touched past the new end would
# raise SIGBUS, which qmix-quantize turns into an error naming the input.
truncated_mid_read() {  # NAME LIMIT_COMMAND PATTERN
  local name=$1 limit=$2 pattern=$3
  cp large.bin shrinking.bin
  bash -c "$limit"' exec "$0" "$@"' "$quantize" -q "${slow[@]}" shrinking.bin out/shrink.bin q4_k >shrink.log 2>&1 &
  local pid=$!
  background+=("$pid")
  sleep 1.5
  truncate -s "$large_header" shrinking.bin
  wait "$pid"
  local actual=$? problems=""
  [ "$actual" = 1 ] || problems+=" exit $actual (expected 1);"
  grep -Eq -- "$pattern" shrink.log || problems+=" message lacks /$pattern/: $(tail -n 2 shrink.log);"
  [ -z "$(leftovers out)" ] && [ ! -e out/shrink.bin ] || problems+=" left $(ls -A out | tr '\n' ' ');"
  rm -f shrinking.bin shrink.log out/shrink.bin out/.*.qmix-* 2>/dev/null
  if [ -z "$problems" ]; then pass "$name"; else fail "$name:$problems"; fi
}
truncated_mid_read "input truncated while mapped" "" \
  "shrinking.bin: (byte [0-9]+: the file ended early|the input changed while it was being read)"
if [ $sanitized -eq 0 ]; then
  # Too little address space to map the file: the reader falls back to plain reads, where
  # the truncation shows as a short read.
  truncated_mid_read "input truncated while read without a mapping" "ulimit -v 400000;" \
    "shrinking.bin: byte [0-9]+: the file ended early"
else
  skip "input truncated while read without a mapping (address-space limits do not apply under AddressSanitizer)"
fi

unset QMIX_FORCE_ARCH

echo "== resource bound"
if [ "${QMIX_BAD_INPUT_RESOURCE:-1}" = 0 ]; then
  skip "resource bound (QMIX_BAD_INPUT_RESOURCE=0)"
elif [ $sanitized -eq 1 ]; then
  skip "resource bound (the binary carries a sanitizer: its shadow memory and quarantine dominate)"
else
  threads=2
  largest=$(py largest large.bin)
  "$quantize" -q -t $threads large.bin out/mapped.bin q4_0 2>/dev/null
  # Address space: the largest tensor (the fallback reader holds one tensor's bytes at a
  # time), for each thread beyond the first a stack (8 MiB) and a malloc arena (glibc
  # reserves 64 MiB of address space per arena), and 64 MiB for the program, its libraries
  # and the chunk buffers. mmap of the whole file would need the file size: it fails, and
  # the reader falls back to plain reads, which is what this checks. (Measured need for the
  # small model with 2 threads: about 170 MiB.)
  bound_kb=$(((largest + (threads - 1) * (64 + 8) * 1048576 + 64 * 1048576) / 1024))
  if [ $((bound_kb * 1024 * 2)) -ge "$large_size" ]; then
    fail "resource bound: the bound ($bound_kb KiB) is not far below the file size ($large_size bytes)"
  elif bash -c "ulimit -v $bound_kb && exec \"\$0\" \"\$@\"" "$quantize" -q -t $threads large.bin out/limited.bin q4_0 2>limited.log &&
    cmp -s out/limited.bin out/mapped.bin; then
    pass "quantizes a $((large_size / 1048576)) MiB model under ulimit -v $((bound_kb / 1024)) MiB (largest tensor $((largest / 1048576)) MiB, $threads threads), same bytes"
  else
    fail "resource bound: under ulimit -v $bound_kb KiB: $(tail -n 2 limited.log)"
  fi
  # Resident memory in the normal, memory-mapped mode: pages are dropped tensor by tensor.
  if [ -x /usr/bin/time ]; then
    peak_kb=$(/usr/bin/time -f %M "$quantize" -q -t $threads large.bin out/rss.bin q4_0 2>&1 >/dev/null | tail -n 1)
    limit_kb=$((large_size / 4 / 1024))
    if [ -n "$peak_kb" ] && [ "$peak_kb" -lt "$limit_kb" ]; then
      pass "peak resident set $((peak_kb / 1024)) MiB while mapping a $((large_size / 1048576)) MiB model (limit $((limit_kb / 1024)) MiB)"
    else
      fail "peak resident set ${peak_kb:-?} KiB is not below $limit_kb KiB"
    fi
  else
    skip "peak resident set (/usr/bin/time is not installed)"
  fi
  rm -f out/mapped.bin out/limited.bin out/rss.bin limited.log
fi

echo "== memory bounds of hostile shapes"
# Models built to make memory grow with the header or with one row: 20 million empty
# vocabulary entries (80 MB of header; the parsed vocabulary once took 707 MB), and one
# tensor stored as a single row of 2^25 binary16 values (64 MiB of input, 128 MiB widened;
# a 1 GiB such row once took 4.5 GB). Both must stay under the tool's 96 MiB bound, and
# the single row must give the bytes of the same values stored as 4096-value rows.
cat >hostile.py <<'PY'
import struct, sys

def header(out, tokens):
    out.write(struct.pack("<I", 0x67676d6c))
    out.write(struct.pack("<11i", tokens, 1500, 384, 6, 1, 448, 384, 6, 1, 80, 1))
    out.write(struct.pack("<ii", 80, 201))
    out.write(bytes(4 * 80 * 201))
    out.write(struct.pack("<i", tokens))

def tensor(out, name, ne, data):
    out.write(struct.pack("<iii", len(ne), len(name), 1))
    out.write(struct.pack("<%di" % len(ne), *ne))
    out.write(name.encode())
    out.write(data)

def halves(count):
    pattern = struct.pack("<4099e", *[((i * 7919) % 4099 / 4099.0 - 0.5) * 0.1 for i in range(4099)])
    return (pattern * (2 * count // len(pattern) + 1))[:2 * count]

kind, path = sys.argv[1], sys.argv[2]
with open(path, "wb") as out:
    if kind == "vocabulary":
        header(out, 20000000)
        out.write(bytes(4 * 20000000))  # every entry empty: just its zero length
        tensor(out, "hostile.weight", [256, 4], halves(1024))
    else:  # row N ROWS: one tensor of ROWS rows of N values, 2^25 values in all
        header(out, 1)
        out.write(struct.pack("<I", 1) + b"a")
        n, rows = int(sys.argv[3]), int(sys.argv[4])
        tensor(out, "hostile.weight", [n, rows], halves(n * rows))
PY
if [ $sanitized -eq 1 ]; then
  skip "memory bounds of hostile shapes (the binary carries a sanitizer)"
elif [ ! -x /usr/bin/time ]; then
  skip "memory bounds of hostile shapes (/usr/bin/time is not installed)"
else
  bound_kb=$((96 * 1024))
  peak() {  # OUTPUT TYPE INPUT: peak RSS in KiB of quantizing INPUT, or "failed"
    /usr/bin/time -f "%M" -o peak.txt "$quantize" -q -t 2 "$3" "$1" "$2" >peak.log 2>&1 &&
      tail -n 1 peak.txt || echo "failed: $(tail -n 2 peak.log)"
  }
  python3 hostile.py vocabulary vocabulary.bin
  kb=$(peak out/vocabulary-q4_0.bin q4_0 vocabulary.bin)
  if [ "$kb" -eq "$kb" ] 2>/dev/null && [ "$kb" -le $bound_kb ]; then
    pass "20 million empty vocabulary entries: peak RSS $((kb / 1024)) MiB (bound 96)"
  else
    fail "20 million empty vocabulary entries: peak RSS $kb KiB (bound $bound_kb)"
  fi
  header_bytes=$((4 + 11 * 4 + 8 + 4 * 80 * 201 + 4 + 4 * 20000000))
  cmp -s <(head -c $header_bytes out/vocabulary-q4_0.bin | tail -c +49) \
    <(head -c $header_bytes vocabulary.bin | tail -c +49) &&
    pass "20 million empty vocabulary entries: the header is copied" ||
    fail "20 million empty vocabulary entries: the header differs"
  rm -f vocabulary.bin out/vocabulary-q4_0.bin
  python3 hostile.py row one-row.bin 33554432 1
  python3 hostile.py row many-rows.bin 4096 8192
  for type in q4_0 q4_k; do
    kb=$(peak out/one-row-$type.bin $type one-row.bin)
    if [ "$kb" -eq "$kb" ] 2>/dev/null && [ "$kb" -le $bound_kb ]; then
      pass "a single row of 2^25 f16 values to $type: peak RSS $((kb / 1024)) MiB (bound 96)"
    else
      fail "a single row of 2^25 f16 values to $type: peak RSS $kb KiB (bound $bound_kb)"
    fi
    "$quantize" -q -t 2 many-rows.bin out/many-rows-$type.bin $type
    bytes=$(( $(stat -c %s out/many-rows-$type.bin) - $(py get out/many-rows-$type.bin tensor:hostile.weight:data) ))
    if [ "$bytes" -gt 0 ] && cmp -s <(tail -c "$bytes" out/one-row-$type.bin) <(tail -c "$bytes" out/many-rows-$type.bin); then
      pass "a single row of 2^25 f16 values to $type: the bytes of 4096-value rows"
    else
      fail "a single row of 2^25 f16 values to $type: its bytes differ from those of 4096-value rows"
    fi
    rm -f out/one-row-$type.bin out/many-rows-$type.bin
  done
  rm -f one-row.bin many-rows.bin peak.txt peak.log
fi
[ "$(md5 large.bin)" = "$large_md5" ] && pass "the large model is untouched" || fail "large.bin changed"
[ -z "$(leftovers out . )" ] && pass "no temporary file anywhere" || fail "left behind: $(leftovers out .)"

echo "bad-input: $passed passed, $failed failed, $skipped skipped"
[ $failed -eq 0 ]
