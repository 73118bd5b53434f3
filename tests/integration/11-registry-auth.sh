#!/usr/bin/env bash
# Registries as operators run them: Debian's docker-registry over TLS from a
# test CA with htpasswd (bcrypt) Basic auth, and a multi-arch OCI index the
# test builds (an amd64 and a fake arm64 image of one small layer each).
# Checks: anonymous pulls are refused with a message naming the auth file;
# credentials from a containers-auth.json (--authfile) and from a Docker
# config.json ($DOCKER_CONFIG); the CA from --registry-ca and from
# certs.d/HOST:PORT/ca.crt; an unknown CA fails unless --tls-verify=false;
# --registry-http does not talk to an HTTPS registry; a wrong password is
# refused; the host's platform is chosen from the index, --platform picks
# the other one, and a platform the index lacks is an error naming it.
set -euo pipefail
BUILD=${EDGEMIG_BUILD:-build}
EM="$BUILD/edgemig"
REPO=$(cd "$(dirname "$0")/../.." && pwd)
PORT=${EDGEMIG_TEST_AUTH_REGISTRY_PORT:-$((5200 + $$ % 700))}
REG=127.0.0.1:$PORT
[ -x "$EM" ] || { echo "SKIP: $EM not built"; exit 77; }
[ "$(id -u)" -eq 0 ] || { echo "SKIP: needs root"; exit 77; }
for t in jq openssl curl python3 sha256sum /usr/bin/docker-registry; do
	command -v "$t" >/dev/null || { echo "SKIP: $t missing (run scripts/setup)"; exit 77; }
done
case $(uname -m) in
x86_64) HOST_ARCH=amd64 OTHER=arm64 ;;
aarch64) HOST_ARCH=arm64 OTHER=amd64 ;;
*) echo "SKIP: the index has amd64 and arm64 images only"; exit 77 ;;
esac

unset REGISTRY_AUTH_FILE DOCKER_CONFIG
[ ! -e /etc/edgemig/auth.json ] || { echo "SKIP: /etc/edgemig/auth.json exists here"; exit 77; }
T=$(mktemp -d /tmp/em-registry-auth-XXXXXX)
cleanup() {
	"$REPO/scripts/registry" stop --data "$T/registry" --port "$PORT" >/dev/null 2>&1 || true
	rm -rf "$T"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# A test CA and a server certificate for 127.0.0.1; another CA nobody uses.
mkcert() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj "/CN=$1" -keyout "$T/$1.key" -out "$T/$1.crt" 2>/dev/null
}
mkcert test-ca
mkcert other-ca
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
	-keyout "$T/server.key" -out "$T/server.csr" 2>/dev/null
openssl x509 -req -in "$T/server.csr" -CA "$T/test-ca.crt" -CAkey "$T/test-ca.key" \
	-CAcreateserial -days 2 -extfile <(printf 'subjectAltName=IP:127.0.0.1\n') \
	-out "$T/server.crt" 2>/dev/null

# htpasswd with bcrypt (what docker-registry accepts), cost 4 to stay quick.
USER=edge PASS='p4ss:w0rd'
python3 -W ignore -c 'import crypt, sys
print(sys.argv[1] + ":" + crypt.crypt(sys.argv[2], crypt.mksalt(crypt.METHOD_BLOWFISH, rounds=16)))' \
	"$USER" "$PASS" >"$T/htpasswd"

"$REPO/scripts/registry" start --data "$T/registry" --port "$PORT" \
	--tls-cert "$T/server.crt" --tls-key "$T/server.key" --htpasswd "$T/htpasswd"
C=(curl -sS --fail --cacert "$T/test-ca.crt" -u "$USER:$PASS")

# push_blob FILE MEDIA-TYPE: uploads FILE, prints its descriptor JSON.
push_blob() {
	local d loc
	d=sha256:$(sha256sum "$1" | cut -d' ' -f1)
	loc=$("${C[@]}" -X POST -o /dev/null -w '%header{location}' "https://$REG/v2/multi/app/blobs/uploads/")
	case $loc in /*) loc=https://$REG$loc ;; esac
	"${C[@]}" -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$1" \
		"$loc$([[ $loc == *\?* ]] && echo '&' || echo '?')digest=$d" >/dev/null
	jq -cn --arg mt "$2" --arg d "$d" --argjson s "$(stat -c %s "$1")" \
		'{mediaType: $mt, digest: $d, size: $s}'
}
# push_image ARCH: one layer holding /arch; prints the manifest's descriptor.
push_image() {
	local a=$1 dir=$T/img-$1
	mkdir -p "$dir/root" && echo "$a" >"$dir/root/arch"
	tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$dir/root" -cf "$dir/layer.tar" arch
	gzip -n -c "$dir/layer.tar" >"$dir/layer.tgz"
	jq -cn --arg a "$a" --arg id "sha256:$(sha256sum "$dir/layer.tar" | cut -d' ' -f1)" \
		'{architecture: $a, os: "linux", config: {Cmd: ["/bin/true"]},
		  rootfs: {type: "layers", diff_ids: [$id]}}' >"$dir/config.json"
	local cfg lay
	cfg=$(push_blob "$dir/config.json" application/vnd.oci.image.config.v1+json)
	lay=$(push_blob "$dir/layer.tgz" application/vnd.oci.image.layer.v1.tar+gzip)
	jq -cn --argjson c "$cfg" --argjson l "$lay" '{schemaVersion: 2,
		mediaType: "application/vnd.oci.image.manifest.v1+json", config: $c, layers: [$l]}' \
		>"$dir/manifest.json"
	local d=sha256:$(sha256sum "$dir/manifest.json" | cut -d' ' -f1)
	"${C[@]}" -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
		--data-binary "@$dir/manifest.json" "https://$REG/v2/multi/app/manifests/$d" >/dev/null
	jq -cn --arg d "$d" --argjson s "$(stat -c %s "$dir/manifest.json")" --arg a "$a" \
		'{mediaType: "application/vnd.oci.image.manifest.v1+json", digest: $d, size: $s,
		  platform: {os: "linux", architecture: $a}}'
}
AMD=$(push_image amd64)
ARM=$(push_image arm64)
jq -cn --argjson a "$AMD" --argjson b "$ARM" '{schemaVersion: 2,
	mediaType: "application/vnd.oci.image.index.v1+json", manifests: [$a, $b]}' >"$T/index.json"
"${C[@]}" -X PUT -H 'Content-Type: application/vnd.oci.image.index.v1+json' \
	--data-binary "@$T/index.json" "https://$REG/v2/multi/app/manifests/v1" >/dev/null
digest_of() { jq -r --arg a "$1" '.manifests[] | select(.platform.architecture == $a) | .digest' "$T/index.json"; }

AUTH=$(printf '%s:%s' "$USER" "$PASS" | base64 -w0)
mkdir -p "$T/podman" "$T/docker" "$T/certs.d/$REG"
jq -n --arg k "$REG" --arg a "$AUTH" '{auths: {($k): {auth: $a}}}' >"$T/podman/auth.json"
jq -n --arg k "https://$REG/v2/" --arg a "$AUTH" '{auths: {($k): {auth: $a}}}' >"$T/docker/config.json"
cp "$T/test-ca.crt" "$T/certs.d/$REG/ca.crt"

n=0
pull() { n=$((n + 1)); "$EM" --root "$T/root$n" image pull --json "$@" "$REG/multi/app:v1"; }
expect_fail() { # expect_fail PATTERN ARGS...: the pull fails, stderr matches
	local pat=$1; shift
	if pull "$@" >"$T/out" 2>"$T/err"; then fail "pull $* succeeded"; fi
	grep -q -- "$pat" "$T/err" || fail "pull $*: error lacks '$pat': $(cat "$T/err")"
}
arch_in() { cat "$(jq -r '.layers[0].dir' "$T/out")/arch"; }

# Without credentials: refused, and the error names the fix.
expect_fail "$T/missing.json" --registry-ca "$T/test-ca.crt" --authfile "$T/missing.json"
HOME=$T/nohome expect_fail "/etc/edgemig/auth.json" --registry-ca "$T/test-ca.crt" --certs-dir "$T/none"
echo "anonymous pull refused, naming the auth file"

# podman auth.json + --registry-ca: the host's platform.
pull --authfile "$T/podman/auth.json" --registry-ca "$T/test-ca.crt" >"$T/out" || fail "pull with auth.json"
[ "$(jq -r .manifest_digest "$T/out")" = "$(digest_of "$HOST_ARCH")" ] || fail "default pull is not $HOST_ARCH"
[ "$(arch_in)" = "$HOST_ARCH" ] || fail "unpacked layer says $(arch_in), not $HOST_ARCH"
echo "auth.json + --registry-ca: the index's linux/$HOST_ARCH manifest"

# Docker config.json via $DOCKER_CONFIG + certs.d: --platform picks the other.
DOCKER_CONFIG=$T/docker pull --certs-dir "$T/certs.d" --platform "linux/$OTHER" >"$T/out" ||
	fail "pull with config.json, certs.d and --platform"
[ "$(jq -r .manifest_digest "$T/out")" = "$(digest_of "$OTHER")" ] || fail "--platform linux/$OTHER ignored"
[ "$(arch_in)" = "$OTHER" ] || fail "unpacked layer says $(arch_in), not $OTHER"
echo "config.json + certs.d + --platform linux/$OTHER: the $OTHER manifest"

A=(--authfile "$T/podman/auth.json")
expect_fail "linux/s390x" "${A[@]}" --registry-ca "$T/test-ca.crt" --platform linux/s390x
expect_fail "not OS/ARCH" "${A[@]}" --registry-ca "$T/test-ca.crt" --platform amd64
expect_fail "certificate" "${A[@]}" --registry-ca "$T/other-ca.crt"
pull "${A[@]}" --registry-ca "$T/other-ca.crt" --tls-verify=false >/dev/null || fail "--tls-verify=false"
expect_fail "HTTP" "${A[@]}" --registry-http --certs-dir "$T/certs.d"
jq -n --arg k "$REG" --arg a "$(printf '%s:wrong' "$USER" | base64 -w0)" \
	'{auths: {($k): {auth: $a}}}' >"$T/bad.json"
expect_fail "refused the credentials" --authfile "$T/bad.json" --certs-dir "$T/certs.d"
echo "unknown CA, skip-verify, HTTP to HTTPS, wrong password and missing platform: as expected"

# What a migration target does: the manifest by its digest (no tag, no
# index), with the credentials and the CA of edgemigd's defaults.
REF=$REG/multi/app@$(digest_of "$OTHER")
"$EM" --root "$T/bydigest" image pull --json --authfile "$T/podman/auth.json" \
	--certs-dir "$T/certs.d" "$REF" >"$T/out" || fail "pull by digest $REF"
[ "$(jq -r .manifest_digest "$T/out")" = "$(digest_of "$OTHER")" ] || fail "pull by digest: other manifest"
[ "$(arch_in)" = "$OTHER" ] || fail "pull by digest: layer says $(arch_in)"
# A digest the registry does not have.
bogus=sha256:$(printf x | sha256sum | cut -d' ' -f1)
if "$EM" --root "$T/bydigest" image pull --authfile "$T/podman/auth.json" --certs-dir "$T/certs.d" \
	"$REG/multi/app@$bogus" 2>"$T/err"; then fail "pulled an absent digest"; fi
grep -q "HTTP 404" "$T/err" || fail "absent digest: $(cat "$T/err")"
echo "pull by manifest digest (the migration target's pull): ok"
# edgemigd takes the same settings for that pull.
if "$BUILD/edgemigd" --config none --registry-tls-verify=maybe --help >/dev/null 2>"$T/err"; then
	fail "edgemigd accepted --registry-tls-verify=maybe"
fi
grep -q "true or false" "$T/err" || fail "edgemigd: $(cat "$T/err")"
echo "PASS"
