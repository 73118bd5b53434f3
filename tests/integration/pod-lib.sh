# The pod the pod checkpoint and pod migration tests share (27-*, 28-*):
# "web", with redis as "db" and a busybox sidecar "side" that INCRs a
# counter over ONE kept-open localhost connection every 10 ms and serves
# the reply over HTTP on :8080. Both ends of that connection are in the
# pod, so a checkpoint or a migration that breaks it shows in the
# sidecar's log ("the connection to redis broke") and in its counter.
# shellcheck shell=bash

POD_SIDECAR='mkdir -p /www; httpd -p 8080 -h /www
while :; do
	rm -f /tmp/q /tmp/a; mkfifo /tmp/q /tmp/a
	nc 127.0.0.1 6379 </tmp/q >/tmp/a &
	exec 3>/tmp/q 4</tmp/a
	while printf "INCR reads\r\n" >&3 && read -r n <&4; do
		echo "$n" >/www/n.tmp && mv /www/n.tmp /www/n; sleep 0.01
	done
	echo "sidecar: the connection to redis broke"
	exec 3>&- 4<&-; kill $! 2>/dev/null; wait $!; sleep 0.1
done'

# pod_web_up IP CMD...: creates the pod with service IP IP through CMD
# (`em` on one host, `h N` in a migration test bed); POD_SIDECAR_PRE is
# run by the sidecar before its loop.
pod_web_up() {
	local ip=$1
	shift
	"$@" pod create --ip "$ip" web >/dev/null || fail "pod create"
	"$@" run --pod web --name db redis >/dev/null || fail "run db"
	"$@" run --pod web --name side busybox sh -c "${POD_SIDECAR_PRE:-}$POD_SIDECAR" >/dev/null ||
		fail "run side"
}
