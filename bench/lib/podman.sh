# The podman baseline for bench/run (issue 8, method 3): at the request
# `podman container checkpoint --export=FILE --compress zstd --tcp-established`
# on host A, FILE through the shaped path (bench/lib/xfer.py), then
# `podman container restore --import=FILE --tcp-established` on host B and the
# service IP's route moved. Sourced by bench/run (uses its h, on_host, testbed,
# fail, log, wait_for, load_redis, send_to/recv_* helpers and WK, SIP, CUR).
# shellcheck shell=bash disable=SC2034,SC2153 # globals shared with bench/run
#
# Set-up (platform-facts, "podman as a side-by-side baseline"):
# - bookworm's podman 4.3.1 + conmon, runtime runc, cgroupfs, file events;
#   CRIU 4.2.1 from /opt: podman checks `criu` on its PATH, and conmon runs
#   runc restore with conmon_env_vars' PATH, so /opt/edgemig/criu/bin is first
#   in both; open-files limit lowered to what this VM allows.
# - Each edge host has its own podman storage ($WK/podman/h<I>) and its own
#   persistent mount namespace (a copy of the root one) in which that storage
#   is bound at ONE fixed path, PM_FIXED: an exported checkpoint carries the
#   source's graphroot/runroot paths (ConmonPidFile, ...) into the target's
#   container config, so both hosts must use the same paths, each seeing its
#   own files there. /run/runc is private per host the same way (the container
#   keeps its ID across hosts).
# - Networking like edgemig's (CNI/Calico style): a per-container netns, eth0
#   with the service IP /32 and a default route via 169.254.1.1, host veth
#   pm-<w>; podman joins it with `--network ns:PM_FIXED/netns/<w>`, a path that
#   in each host's mount namespace is that host's own netns for the container.
#   A fresh one is made on the target at each migration (CRIU's network-lock
#   rules stay in the source's, which is then deleted).
# - Images: `podman pull oci:/var/cache/edgemig/images/<w>:latest` into each
#   host's storage before the first podman cell (pre-seeded off the shaped
#   path, like the other baselines' layers).

PM_CRIU_DIR=$(dirname "${EDGEMIG_CRIU:-/opt/edgemig/criu/bin/criu}")
PM_NSDIR=/run/edgemig-podman-$TESTBED_PREFIX  # mount-namespace files (private mount)
PM_FIXED=/var/lib/edgemig-podman-$TESTBED_PREFIX # where each host sees its storage
PM_READY=0
PM_WHY=''

# pm_check: can podman checkpoint/restore run here? Sets PM_WHY if not.
pm_check() {
	local t v
	for t in podman conmon runc unshare nsenter; do
		command -v "$t" >/dev/null || {
			PM_WHY="$t is not installed (scripts/setup installs podman from bookworm)"
			return 1
		}
	done
	v=$(podman --version 2>&1) || {
		PM_WHY="podman --version failed: $v"
		return 1
	}
	[ -x "$PM_CRIU_DIR/criu" ] || {
		PM_WHY="no CRIU at $PM_CRIU_DIR/criu (bookworm's criu 3.17 fails on this kernel: vdso)"
		return 1
	}
	return 0
}

# pm I ARGS...: podman on host I (its network and mount namespaces).
pm() {
	local i=$1 ns
	shift
	ns=EM_H${i}_NS
	CONTAINERS_CONF=$WK/podman/containers.conf PATH="$PM_CRIU_DIR:$PATH" \
		nsenter --mount="$PM_NSDIR/mnt-h$i" --net="/run/netns/${!ns}" \
		podman --root "$PM_FIXED/root" --runroot "$PM_FIXED/run" --tmpdir "$PM_FIXED/tmp" \
		--storage-driver overlay --cgroup-manager cgroupfs --events-backend file --runtime runc "$@"
}

pm_setup() { # once: config, per-host mount namespaces and storage, images
	((PM_READY)) && return 0
	pm_check || fail "podman: $PM_WHY"
	local i w
	mkdir -p "$WK/podman" "$PM_NSDIR" "$PM_FIXED"
	cat >"$WK/podman/containers.conf" <<-EOF
		[containers]
		default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
		[engine]
		cgroup_manager = "cgroupfs"
		events_logger = "file"
		runtime = "runc"
		conmon_env_vars = ["PATH=$PM_CRIU_DIR:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
	EOF
	# A mount namespace can only be pinned on a file of a private mount.
	mountpoint -q "$PM_NSDIR" || { mount --bind "$PM_NSDIR" "$PM_NSDIR" && mount --make-private "$PM_NSDIR"; } ||
		fail "podman: private mount $PM_NSDIR"
	PM_READY=1
	for i in 1 2; do
		mkdir -p "$WK/podman/h$i"/{root,run,tmp,netns,runc}
		touch "$PM_NSDIR/mnt-h$i"
		unshare --mount="$PM_NSDIR/mnt-h$i" --propagation private sh -c \
			"mount --bind '$WK/podman/h$i' '$PM_FIXED' && mkdir -p /run/runc && mount --bind '$PM_FIXED/runc' /run/runc" ||
			fail "podman: mount namespace of host $i"
		for w in $WORKLOADS; do
			pm "$i" pull -q "oci:/var/cache/edgemig/images/$w:latest" >/dev/null 2>>"$WK/podman.log" ||
				fail "podman pull $w into host $i: $(tail -n 3 "$WK/podman.log")"
		done
	done
	log "podman: $(podman --version), storage $WK/podman/h1 and h2 (seen at $PM_FIXED in each host's mount ns)"
}

# pm_netns I W: a fresh container netns for W on host I, wired like edgemig's,
# pinned at $PM_FIXED/netns/<W> inside host I's mount namespace (nothing
# propagates between mount namespaces here: every mount is private).
pm_netns() {
	local i=$1 w=$2 f=$PM_FIXED/netns/$2 ns
	ns=EM_H${i}_NS
	pm_netns_rm "$i" "$w"
	touch "$WK/podman/h$i/netns/$w"
	pm_in "$i" unshare --net="$f" true || fail "podman: netns for $w on host $i"
	pm_in "$i" nsenter --net="$f" ip -batch - <<-EOF || fail "podman: wiring the netns of $w on host $i"
		link add eth0 type veth peer name pm-$w netns /run/netns/${!ns}
		link set lo up
		link set eth0 up
		addr add ${SIP[$w]}/32 dev eth0
		route add 169.254.1.1 dev eth0 scope link
		route add default via 169.254.1.1 dev eth0
	EOF
	on_host "$i" ip -batch - <<-EOF || fail "podman: host side of $w on host $i"
		link set pm-$w up
		addr add 169.254.1.1/32 dev pm-$w
		route replace ${SIP[$w]}/32 dev pm-$w scope link
	EOF
}
pm_netns_rm() { # I W (the host veth goes with the namespace)
	on_host "$1" ip link del "pm-$2" 2>/dev/null || true
	pm_in "$1" umount "$PM_FIXED/netns/$2" 2>/dev/null || true
	rm -f "$WK/podman/h$1/netns/$2"
}
pm_in() { # I CMD...: CMD in host I's mount namespace
	local i=$1
	shift
	nsenter --mount="$PM_NSDIR/mnt-h$i" "$@"
}

pm_running_on() { # I W
	[ "$(pm "$1" inspect -f '{{.State.Status}}' "$2" 2>/dev/null)" = running ]
}

# pm_begin W: the workload moves from edgemig to podman on the host it is on
# (the service IP can be served by one container only).
pm_begin() {
	local w=$1 i=${CUR[$1]} sip=${SIP[$1]}
	pm_setup
	METHOD=podman # for wl_exec
	shape 0 # the previous method's last cell left the links shaped; loading redis takes 60 MB
	h "$i" rm -f "$w" >/dev/null || fail "rm $w (edgemig) on host $i"
	pm_netns "$i" "$w"
	pm "$i" run -d --name "$w" --network "ns:$PM_FIXED/netns/$w" "localhost/var/cache/edgemig/images/$w:latest" \
		>/dev/null 2>>"$WK/podman.log" || fail "podman run $w on host $i: $(tail -n 3 "$WK/podman.log")"
	testbed route "$sip" "$i" 2>/dev/null
	case $w in
	busybox) wait_for 10 pm "$i" exec busybox test -s /data/counter.log || fail "podman: counter not counting" ;;
	redis)
		wait_for 20 on_client redis-cli -h "$sip" ping || fail "podman: redis not reachable"
		load_redis "$sip"
		;;
	facedetect)
		wait_for 60 on_client python3 "$REPO/scripts/facedetect-client.py" "$sip" 8080 "$FACE" ||
			fail "podman: facedetect not answering"
		;;
	openface)
		wait_for 300 on_client python3 "$OFC" --count 1 "$sip" 8080 "$OF_EXPECT" >/dev/null ||
			fail "podman: openface not answering"
		;;
	esac
}

# pm_end W [METHOD-LIST]: podman's container removed; unless podman is the
# last method of METHOD-LIST (default $METHODS, the order the cells run in),
# the workload is started again under edgemig (on host 1, as at the start).
pm_end() {
	local w=$1 ms=${2:-$METHODS}
	pm "${CUR[$w]}" rm -f -t 0 "$w" >/dev/null 2>&1 || true
	pm_netns_rm "${CUR[$w]}" "$w"
	METHOD=''
	[ "${ms##* }" = podman ] || start_workload "$w"
}

m_podman() { # W SRC DST
	local w=$1 s=$2 d=$3 ck=$WK/pm-ck.tar.zst rf=$WK/pm-rf
	rm -rf "$ck" "$rf"
	recv_start "$d" "$rf" pm_recv_file
	T_REQ=$(now_ms) T_STOP=$T_REQ
	pm_netns "$d" "$w" # the target's container netns with the service IP, before the restore
	pm "$s" container checkpoint --export="$ck" --compress zstd --tcp-established "$w" >/dev/null \
		2>>"$WK/podman.log" || fail "podman checkpoint $w on host $s: $(tail -n 3 "$WK/podman.log")"
	send_to "$s" "$d" <"$ck"
	recv_wait
	pm "$d" container restore --import="$rf/ck.tar.zst" --tcp-established >/dev/null 2>>"$WK/podman.log" ||
		fail "podman restore $w on host $d: $(tail -n 3 "$WK/podman.log")"
	testbed route "${SIP[$w]}" "$d" 2>/dev/null
	T_RUN=$(now_ms)
	pm "$s" rm -f -t 0 "$w" >/dev/null 2>>"$WK/podman.log" || log "podman rm $w on host $s failed"
	pm_netns_rm "$s" "$w"
	EXTRA=$(printf '{"tool_bytes_wire": %d}' "$(stat -c %s "$ck")")
	rm -rf "$ck" "$rf"
}
pm_recv_file() { cat >"$1/ck.tar.zst"; }

# The workload's container on host I, whichever engine runs it now.
wl_exec() { # I NAME CMD...
	local i=$1
	shift
	if [ "${METHOD:-}" = podman ]; then pm "$i" exec "$@"; else h "$i" exec "$@"; fi
}
wl_running_on() { # I W
	if [ "${METHOD:-}" = podman ]; then pm_running_on "$@"; else running_on "$@"; fi
}

# pm_cleanup: every podman container, namespace and mount this run made.
pm_cleanup() {
	((PM_READY)) || return 0
	local i f
	for i in 1 2; do
		[ -e "$PM_NSDIR/mnt-h$i" ] || continue
		pm "$i" rm -a -f -t 0 >/dev/null 2>&1 || true
		for f in "$WK/podman/h$i/netns"/*; do
			[ -e "$f" ] && pm_netns_rm "$i" "${f##*/}"
		done
		umount "$PM_NSDIR/mnt-h$i" 2>/dev/null || true
	done
	umount "$PM_NSDIR" 2>/dev/null || true
	rm -rf "$PM_NSDIR"
	rmdir "$PM_FIXED" 2>/dev/null || true
	PM_READY=0
}

# Asked for but not runnable here: say why and stop before building anything.
case " $METHODS " in
*" podman "*) pm_check || skip "podman: $PM_WHY" ;;
esac
