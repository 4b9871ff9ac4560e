#!/bin/sh
# The image's entrypoint: the only code that ever runs as root, and only for as long as it takes
# to hand the mounted volume to the app user. Then it replaces itself (exec) with the command,
# running as that user, so the command is PID 1 and receives Railway's SIGTERM itself.
#
# Railway mounts a volume owned by root; the app runs as the unprivileged user "app" (uid 10001
# in the image). Started as root, this script
#   1. creates RAILWAY_VOLUME_MOUNT_PATH and OUTPUT_DIR when set, and gives the app user any of
#      them it does not own yet (recursively: a volume written by an older image running as root
#      changes hands once; a volume the app already owns is not walked again);
#   2. drops to the app user with setpriv (util-linux, in the Debian base image): real, effective
#      and saved uid and gid, supplementary groups reset, no inheritable capabilities.
# Started as any other user (docker run --user, a platform that never grants root), it only execs.
set -eu

APP_USER=${APP_USER:-app}

if [ "$(id -u)" != "0" ]; then
    exec "$@"
fi

uid=$(id -u "$APP_USER")
gid=$(id -g "$APP_USER")

for dir in "${RAILWAY_VOLUME_MOUNT_PATH:-}" "${OUTPUT_DIR:-}"; do
    [ -n "$dir" ] || continue
    case "$dir" in
        /) echo "entrypoint: refusing to change the owner of / (check OUTPUT_DIR and RAILWAY_VOLUME_MOUNT_PATH)" >&2
           exit 2 ;;
    esac
    mkdir -p "$dir"
    if [ "$(stat -c %u "$dir")" != "$uid" ]; then
        chown -R "$uid:$gid" "$dir"
    fi
done

exec setpriv --reuid="$uid" --regid="$gid" --init-groups --inh-caps=-all -- "$@"
