#!/usr/bin/env bash
# Image store end to end against a real registry (Debian docker-registry on a
# private port): push the cached test images, pull them into two state roots
# ("two hosts"), check identical layer names and verified digests, ls/inspect
# --json, the bearer-token flow (through a token-checking proxy), a concurrent
# double pull, resume of a partial blob, rm + prune, push, and import of an OCI
# layout directory and of a `docker save` tar.
set -euo pipefail
BUILD=${EDGEMIG_BUILD:-build}
EM="$BUILD/edgemig"
REPO=$(cd "$(dirname "$0")/../.." && pwd)
CACHE=${EDGEMIG_CACHE:-/var/cache/edgemig}/images
PORT=${EDGEMIG_TEST_REGISTRY_PORT:-5071}
REG=127.0.0.1:$PORT
IMAGES=(busybox redis facedetect)
[ -x "$EM" ] || { echo "SKIP: $EM not built"; exit 77; }
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 77; }
for t in jq skopeo sha256sum /usr/bin/docker-registry; do
	command -v "$t" >/dev/null || { echo "SKIP: $t missing (run scripts/setup)"; exit 77; }
done
for n in "${IMAGES[@]}"; do
	[ -f "$CACHE/$n/index.json" ] || { echo "SKIP: test image $n not built (scripts/build-test-images)"; exit 77; }
done

T=$(mktemp -d /tmp/em-image-store-XXXXXX)
cleanup() {
	[ -z "${proxy:-}" ] || kill "$proxy" 2>/dev/null || true
	"$REPO/scripts/registry" stop --data "$T/registry" --port "$PORT" >/dev/null 2>&1 || true
	rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
em() { local root=$1; shift; "$EM" --root "$root" image "$@"; }

"$REPO/scripts/registry" start --data "$T/registry" --port "$PORT"
"$REPO/scripts/push-test-images" --registry "$REG" "${IMAGES[@]}"

# Independent expectations from the OCI layouts: manifest digest and diff-ids.
want_manifest() { jq -r '.manifests[0].digest' "$CACHE/$1/index.json"; }
want_diff_ids() {
	local m; m=$CACHE/$1/blobs/sha256/$(want_manifest "$1" | cut -d: -f2)
	jq -r '.rootfs.diff_ids[]' "$CACHE/$1/blobs/sha256/$(jq -r .config.digest "$m" | cut -d: -f2)"
}

A=$T/hostA B=$T/hostB
mkdir -p "$A" "$B"
for n in "${IMAGES[@]}"; do
	for root in "$A" "$B"; do
		em "$root" pull --insecure --json "$REG/edgemig/$n:latest" >"$T/pull.json" ||
			fail "pull $n into $root"
		[ "$(jq -r .manifest_digest "$T/pull.json")" = "$(want_manifest "$n")" ] ||
			fail "$n: manifest digest $(jq -r .manifest_digest "$T/pull.json") != layout"
		[ "$(jq -r '.layers[].diff_id' "$T/pull.json")" = "$(want_diff_ids "$n")" ] ||
			fail "$n: diff-ids differ from the image config"
	done
done

# Same layer names on both hosts, exactly the images' diff-ids.
(cd "$A/layers/sha256" && ls) >"$T/a.ls"
(cd "$B/layers/sha256" && ls) >"$T/b.ls"
cmp -s "$T/a.ls" "$T/b.ls" || fail "layer dirs differ between hosts: $(diff "$T/a.ls" "$T/b.ls")"
for n in "${IMAGES[@]}"; do want_diff_ids "$n"; done | cut -d: -f2 | sort -u >"$T/want.ls"
cmp -s "$T/a.ls" "$T/want.ls" || fail "layer dirs are not the diff-ids: $(diff "$T/a.ls" "$T/want.ls")"
echo "layer dirs identical on both hosts: $(wc -l <"$T/a.ls") layers"

# Every stored blob hashes to its name; no temp leftovers.
for root in "$A" "$B"; do
	for f in "$root"/blobs/sha256/*; do
		[ "$(sha256sum "$f" | cut -d' ' -f1)" = "$(basename "$f")" ] || fail "blob $f is corrupt"
	done
	! ls -A "$root/blobs/sha256" "$root/layers/sha256" | grep -q '^\.' || fail "temp files left in $root"
done

# The unpacked busybox base layer equals GNU tar's extraction of the same blob.
bm=$CACHE/busybox/blobs/sha256/$(want_manifest busybox | cut -d: -f2)
bl=$(jq -r '.layers[0].digest' "$bm" | cut -d: -f2)
bd=$(want_diff_ids busybox | head -1 | cut -d: -f2)
mkdir "$T/tar-x" && tar -xzf "$CACHE/busybox/blobs/sha256/$bl" -C "$T/tar-x"
diff -r --no-dereference "$T/tar-x" "$A/layers/sha256/$bd" || fail "busybox layer differs from tar -x"
[ "$(stat -c %U:%a "$A/layers/sha256/$bd/bin/busybox")" = "$(stat -c %U:%a "$T/tar-x/bin/busybox")" ] ||
	fail "owner/mode of bin/busybox differ from tar -x"

# ls / inspect --json, short names.
em "$A" ls --json >"$T/ls.json"
[ "$(jq length "$T/ls.json")" -eq 3 ] || fail "ls: $(cat "$T/ls.json")"
jq -e --arg r "$REG" 'map(.name) == ["\($r)/edgemig/busybox:latest","\($r)/edgemig/facedetect:latest","\($r)/edgemig/redis:latest"]' \
	"$T/ls.json" >/dev/null || fail "ls names: $(jq -c 'map(.name)' "$T/ls.json")"
em "$A" inspect --json redis >"$T/inspect.json" || fail "inspect redis"
jq -e '.config.Cmd | length > 0' "$T/inspect.json" >/dev/null || fail "inspect: no Cmd"
for d in $(jq -r '.layers[].dir' "$T/inspect.json"); do [ -d "$d" ] || fail "layer dir $d missing"; done
[ -x "$(jq -r '.layers[0].dir' "$T/inspect.json")/bin/sh" ] || [ -L "$(jq -r '.layers[0].dir' "$T/inspect.json")/bin" ] ||
	fail "redis base layer has no /bin"
em "$A" inspect --json "$(want_manifest redis | cut -c8-19)" | jq -e '.name | endswith("/redis:latest")' >/dev/null ||
	fail "inspect by digest prefix"
! em "$A" inspect nosuchimage 2>"$T/err" || fail "inspect of a missing image succeeded"
grep -q "no image 'nosuchimage'" "$T/err" || fail "missing-image error: $(cat "$T/err")"

# Bearer-token flow: a token-checking proxy in front of the registry answers
# 401 + WWW-Authenticate: Bearer realm=...,service=...,scope=... until the
# client presents the token it fetched from the realm.
TPORT=$((PORT + 1))
cat >"$T/authproxy.py" <<'PY'
import http.server, json, sys, urllib.request, urllib.error, urllib.parse
port, upstream, log = int(sys.argv[1]), sys.argv[2], sys.argv[3]
TOKEN = "tok-edgemig-test"
class H(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def note(self, s):
        with open(log, "a") as f: f.write(s + "\n")
    def do_GET(self): self.handle_any("GET")
    def do_HEAD(self): self.handle_any("HEAD")
    def handle_any(self, method):
        u = urllib.parse.urlparse(self.path)
        if u.path == "/token":
            q = urllib.parse.parse_qs(u.query)
            ok = q.get("service") == ["edgemig-test"] and q.get("scope", [""])[0].startswith("repository:edgemig/")
            basic = self.headers.get("Authorization") or ""
            self.note("token %s%s" % ("ok" if ok else "bad " + u.query,
                                      " with " + basic if basic else ""))
            body = json.dumps({"token": TOKEN} if ok else {}).encode()
            self.send_response(200 if ok else 400); self.send_header("Content-Length", str(len(body)))
            self.end_headers(); self.wfile.write(body); return
        if self.headers.get("Authorization") != "Bearer " + TOKEN:
            self.note("401 " + u.path)
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Bearer realm="http://127.0.0.1:%d/token",service="edgemig-test",scope="repository:edgemig/busybox:pull"' % port)
            self.send_header("Content-Length", "0"); self.end_headers(); return
        req = urllib.request.Request(upstream + self.path, method=method)
        if self.headers.get("Accept"): req.add_header("Accept", self.headers["Accept"])
        try:
            r = urllib.request.urlopen(req); code = r.status
        except urllib.error.HTTPError as e:
            r = e; code = e.code
        body = r.read()
        self.send_response(code)
        for h in ("Content-Type", "Docker-Content-Digest"):
            if r.headers.get(h): self.send_header(h, r.headers[h])
        self.send_header("Content-Length", str(len(body))); self.end_headers()
        if method != "HEAD": self.wfile.write(body)
http.server.ThreadingHTTPServer(("127.0.0.1", port), H).serve_forever()
PY
python3 "$T/authproxy.py" "$TPORT" "http://$REG" "$T/auth.log" &
proxy=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$TPORT/v2/" && break; sleep 0.1; done
H=$T/hostH
mkdir -p "$H"
em "$H" pull --insecure --json "127.0.0.1:$TPORT/edgemig/busybox:latest" >"$T/auth.json" 2>"$T/auth.err" ||
	{ kill "$proxy"; fail "pull with bearer auth: $(cat "$T/auth.err"; cat "$T/auth.log")"; }
kill "$proxy"; wait "$proxy" 2>/dev/null || true
grep -q '^token ok' "$T/auth.log" || fail "no token fetched: $(cat "$T/auth.log")"
grep -q '^401 /v2/edgemig/busybox/manifests/latest' "$T/auth.log" || fail "no 401 challenge seen"
[ "$(jq -r .manifest_digest "$T/auth.json")" = "$(want_manifest busybox)" ] || fail "bearer pull digest"
grep -q '^token ok with' "$T/auth.log" && fail "credentials sent without an auth file"
# With an auth file naming the registry, the token request carries its
# credentials (Basic), as Docker's token servers expect.
jq -n --arg k "127.0.0.1:$TPORT" --arg a "$(printf 'u:p w' | base64 -w0)" '{auths: {($k): {auth: $a}}}' \
	>"$T/authfile.json"
python3 "$T/authproxy.py" "$TPORT" "http://$REG" "$T/auth.log" &
proxy=$!
for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$TPORT/v2/" && break; sleep 0.1; done
em "$T/hostH2" pull --insecure --authfile "$T/authfile.json" "127.0.0.1:$TPORT/edgemig/busybox:latest" \
	>/dev/null 2>"$T/auth.err" || { kill "$proxy"; fail "bearer pull with an auth file: $(cat "$T/auth.err")"; }
kill "$proxy"; wait "$proxy" 2>/dev/null || true
grep -q "^token ok with Basic $(printf 'u:p w' | base64 -w0)\$" "$T/auth.log" ||
	fail "the token request lacked the auth file's credentials: $(cat "$T/auth.log")"

# Two concurrent pulls of the same image into one fresh root.
C=$T/hostC
mkdir -p "$C"
em "$C" pull --insecure --json "$REG/edgemig/redis:latest" >"$T/c1.json" 2>"$T/c1.err" &
p1=$!
em "$C" pull --insecure --json "$REG/edgemig/redis:latest" >"$T/c2.json" 2>"$T/c2.err" &
p2=$!
wait $p1 || fail "concurrent pull 1: $(cat "$T/c1.err")"
wait $p2 || fail "concurrent pull 2: $(cat "$T/c2.err")"
cmp -s <(jq -S . "$T/c1.json") <(jq -S . "$T/c2.json") || fail "concurrent pulls disagree"
[ "$(ls "$C/layers/sha256" | wc -l)" -eq 2 ] || fail "concurrent pull: $(ls -A "$C/layers/sha256")"
! ls -A "$C/blobs/sha256" "$C/layers/sha256" | grep -q '^\.tmp' || fail "concurrent pull left temp dirs"

# Resume: a partial blob is continued, not restarted, and verified.
D=$T/hostD
mkdir -p "$D/blobs/sha256"
rl=$(jq -r '.layers[1].digest' "$T/c1.json" | cut -d: -f2)
head -c 1000000 "$CACHE/redis/blobs/sha256/$rl" >"$D/blobs/sha256/.partial-$rl"
"$EM" --root "$D" --log-level=info image pull --insecure "$REG/edgemig/redis:latest" >/dev/null 2>"$T/resume.err" ||
	fail "pull with a partial blob: $(cat "$T/resume.err")"
grep -q "resuming sha256:$rl at 1000000 bytes" "$T/resume.err" || fail "no resume: $(cat "$T/resume.err")"
em "$D" inspect redis >/dev/null || fail "resumed image not usable"
# ... and a corrupt partial blob is detected and refused, leaving no blob.
E=$T/hostE
mkdir -p "$E/blobs/sha256"
head -c 1000000 /dev/urandom >"$E/blobs/sha256/.partial-$rl"
! em "$E" pull --insecure "$REG/edgemig/redis:latest" 2>"$T/bad.err" || fail "corrupt resume accepted"
grep -q "digest mismatch" "$T/bad.err" || fail "corrupt resume error: $(cat "$T/bad.err")"
[ ! -e "$E/blobs/sha256/$rl" ] || fail "corrupt blob stored"
em "$E" pull --insecure "$REG/edgemig/redis:latest" >/dev/null || fail "pull after a failed one"

# rm + prune: busybox's layers go, the shared Debian base stays.
em "$A" rm --json busybox | jq -e 'length == 1' >/dev/null || fail "rm busybox"
[ "$(em "$A" ls --json | jq length)" -eq 2 ] || fail "ls after rm"
em "$A" prune --json >"$T/prune.json" || fail "prune"
jq -e '.layers_removed == 2 and .blobs_removed == 4' "$T/prune.json" >/dev/null ||
	fail "prune: $(cat "$T/prune.json")"
[ ! -d "$A/layers/sha256/$bd" ] || fail "busybox layer survived prune"
em "$A" inspect --json facedetect | jq -r '.layers[].dir' | while read -r d; do
	[ -d "$d" ] || fail "prune removed a used layer $d"
done
em "$A" prune --json | jq -e '.layers_removed == 0 and .blobs_removed == 0' >/dev/null ||
	fail "second prune removed something"
em "$A" pull --insecure "$REG/edgemig/busybox:latest" >/dev/null || fail "store unusable after prune"

# push from a store to a new repository, then pull it back elsewhere.
em "$A" push --insecure --json busybox "$REG/edgemig/busybox-copy:v1" >/dev/null || fail "push"
em "$C" pull --insecure --json "$REG/edgemig/busybox-copy:v1" |
	jq -e --arg d "$(want_manifest busybox)" '.manifest_digest == $d' >/dev/null || fail "pull of pushed copy"

# import of an OCI image layout directory gives the same layer names.
F=$T/hostF
mkdir -p "$F"
em "$F" import --json "$CACHE/busybox" >"$T/import.json" || fail "import"
jq -e '.name == "localhost/busybox:latest"' "$T/import.json" >/dev/null || fail "import name: $(cat "$T/import.json")"
[ "$(jq -r '.layers[].diff_id' "$T/import.json")" = "$(want_diff_ids busybox)" ] || fail "import diff-ids"
em "$F" inspect busybox >/dev/null || fail "inspect imported busybox"

# A hostile layer through the real binary: the import fails naming the entry,
# nothing lands outside, no partial layer and no image record remain, and the
# store keeps working.
mkdir -p "$T/canary" "$T/evil/blobs/sha256"
python3 - "$T/evil" "$T/canary" <<'PY'
import gzip, hashlib, io, json, os, sys, tarfile
out, canary = sys.argv[1], sys.argv[2]
def blob(data):
    d = hashlib.sha256(data).hexdigest()
    open(os.path.join(out, "blobs/sha256", d), "wb").write(data)
    return "sha256:" + d, len(data)
bio = io.BytesIO()
with tarfile.open(fileobj=bio, mode="w", format=tarfile.PAX_FORMAT) as t:
    ti = tarfile.TarInfo("escape"); ti.type = tarfile.SYMTYPE; ti.linkname = canary; t.addfile(ti)
    ti = tarfile.TarInfo("escape/pwned"); ti.size = 5; t.addfile(ti, io.BytesIO(b"pwned"))
raw = bio.getvalue()
layer, lsize = blob(gzip.compress(raw))
cfg, csize = blob(json.dumps({"architecture": "amd64", "os": "linux", "config": {},
    "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(raw).hexdigest()]}}).encode())
man, msize = blob(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": csize},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": lsize}]}).encode())
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": man, "size": msize}]}, open(os.path.join(out, "index.json"), "w"))
open(os.path.join(out, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
PY
! em "$F" import --name evil "$T/evil" 2>"$T/evil.err" || fail "hostile layer imported"
grep -q "entry 'escape/pwned': path goes through a symlink" "$T/evil.err" || fail "hostile error: $(cat "$T/evil.err")"
[ -z "$(ls -A "$T/canary")" ] || fail "hostile layer wrote outside: $(ls -A "$T/canary")"
! ls -A "$F/layers/sha256" | grep -q '^\.tmp' || fail "partial hostile layer left"
[ "$(em "$F" ls --json | jq length)" -eq 1 ] || fail "hostile image registered"
em "$F" prune --json >/dev/null && em "$F" inspect busybox >/dev/null || fail "store unusable after hostile layer"

# import of a `docker save` tar (classic layout: manifest.json, <id>/layer.tar).
DS=$T/dsave
mkdir -p "$DS"
bc_=$(jq -r .config.digest "$bm" | cut -d: -f2)
cp "$CACHE/busybox/blobs/sha256/$bc_" "$DS/$bc_.json"
i=0 layers=()
for l in $(jq -r '.layers[].digest' "$bm" | cut -d: -f2); do
	mkdir "$DS/l$i" && zcat "$CACHE/busybox/blobs/sha256/$l" >"$DS/l$i/layer.tar"
	layers+=("\"l$i/layer.tar\""); i=$((i + 1))
done
echo "[{\"Config\":\"$bc_.json\",\"RepoTags\":[\"mybox:1\"],\"Layers\":[$(IFS=,; echo "${layers[*]}")]}]" >"$DS/manifest.json"
tar -cf "$T/busybox-save.tar" -C "$DS" .
G=$T/hostG
mkdir -p "$G"
em "$G" import --json "$T/busybox-save.tar" >"$T/dimport.json" || fail "docker-save import"
jq -e '.name == "localhost/mybox:1"' "$T/dimport.json" >/dev/null || fail "docker-save name: $(cat "$T/dimport.json")"
[ "$(jq -r '.layers[].diff_id' "$T/dimport.json")" = "$(want_diff_ids busybox)" ] || fail "docker-save diff-ids"
diff -r --no-dereference "$T/tar-x" "$G/layers/sha256/$bd" || fail "docker-save layer differs from tar -x"
echo "PASS"
