#!/bin/sh
# Initialises the data directory the first time (an empty named volume
# mounted on /var/lib/mysql), then runs mariadbd in the foreground. Runs as
# the container's root, which owns a fresh volume; mariadbd drops to mysql.
set -eu
D=/var/lib/mysql
mkdir -p /run/mysqld "$D"
chown mysql:mysql /run/mysqld "$D"
if [ ! -d "$D/mysql" ]; then
	mariadb-install-db --user=mysql --datadir="$D" --skip-test-db --skip-name-resolve --force \
		--auth-root-authentication-method=socket >/tmp/install-db.log 2>&1 || {
		cat /tmp/install-db.log >&2
		exit 1
	}
fi
exec mariadbd
