/**
 * The `systemctl` a lab node has on its PATH (bind-mounted over /usr/local/sbin inside the
 * node's namespace). It manages only that node's containerd, so trustplay's default
 * `restart_command: systemctl restart containerd` works unchanged, and it fails the way systemd
 * does when containerd will not start (exit 1, "Job for containerd.service failed ...").
 */

/** The drop-in directory whose Environment= lines the shim gives containerd (systemd's runtime drop-ins). */
export const DROPIN_DIR = '/run/systemd/system/containerd.service.d';

/** Where the shim keeps containerd's pid and log, as seen inside the node. */
export const SHIM_PIDFILE = '/run/lab/containerd.pid';
export const SHIM_LOG = '/run/lab/containerd.log';

/**
 * The shim script (POSIX sh) for a node whose containerd binaries are in `binDir`. The unit runs
 * that binary by absolute path, as a systemd unit's ExecStart does, whatever `containerd` the
 * node's PATH finds (k3s, RKE2 and upgrades in progress differ there too).
 */
export function systemctlShim(binDir: string, unit?: ShimUnit): string {
  const u = unit ?? {
    name: 'containerd',
    description: 'containerd container runtime',
    socket: '/run/containerd/containerd.sock',
    config: '/etc/containerd/config.toml',
    binary: `${binDir}/containerd`,
  };
  return `#!/bin/sh
# systemctl for a trustplay lab node (not systemd): it manages only this node's ${u.name} unit,
# which runs containerd with ${u.config} inside the node's mount namespace.
BIN=${shQuote(binDir)}
DAEMON=${shQuote(u.binary)}
PIDFILE=${SHIM_PIDFILE}
LOG=${SHIM_LOG}
SOCK=${u.socket}
CONFIG=${u.config}
# How long start waits for containerd's API, in tenths of a second (systemd's Type=notify waits too).
WAIT_TENTHS=\${LAB_CONTAINERD_WAIT_TENTHS:-150}

state_of() { sed 's/.*) //; s/ .*//' "/proc/$1/stat" 2>/dev/null; }

alive() {
  s=$(state_of "$1")
  [ -n "$s" ] && [ "$s" != Z ] && [ "$s" != X ]
}

running_pid() {
  [ -f "$PIDFILE" ] || return 1
  pid=$(cat "$PIDFILE" 2>/dev/null)
  [ -n "$pid" ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = containerd ] || return 1
  alive "$pid" || return 1
  echo "$pid"
}

unit_env() {
  for f in ${DROPIN_DIR}/*.conf; do
    [ -f "$f" ] && sed -n 's/^[[:space:]]*Environment=//p' "$f" | tr -d '"'
  done
}

do_start() {
  running_pid >/dev/null && return 0
  mkdir -p "$(dirname "$PIDFILE")"
  # A clean environment, as systemd gives a unit (no proxy variables leak into registry requests),
  # plus the Environment= lines of the unit's drop-ins (one VAR=value without spaces each), as
  # systemd adds them: how a node's containerd gets HTTPS_PROXY.
${
  u.preStart
    ? `  # The unit's own work before containerd starts (the k3s stand-in renders registries.yaml here).
  if ! ${u.preStart} >>"$LOG" 2>&1; then
    echo "Job for ${u.name}.service failed because the control process exited with error code." >&2
    tail -n 3 "$LOG" >&2
    return 1
  fi
`
    : ''
}  setsid env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin $(unit_env) \\
    "$DAEMON" --config "$CONFIG" </dev/null >>"$LOG" 2>&1 &
  pid=$!
  echo "$pid" >"$PIDFILE"
  i=0
  while [ "$i" -lt "$WAIT_TENTHS" ]; do
    if ! alive "$pid"; then
      rm -f "$PIDFILE"
      echo "Job for ${u.name}.service failed because the control process exited with error code." >&2
      echo "See \\"$LOG\\" for details:" >&2
      tail -n 3 "$LOG" >&2
      return 1
    fi
    if [ -S "$SOCK" ] && "$BIN/ctr" --address "$SOCK" version >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.1
    i=$((i + 1))
  done
  echo "Job for ${u.name}.service failed because a timeout was exceeded." >&2
  return 1
}

do_stop() {
  pid=$(running_pid) || { rm -f "$PIDFILE"; return 0; }
  kill -TERM "$pid" 2>/dev/null
  i=0
  while alive "$pid" && [ "$i" -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
  alive "$pid" && kill -KILL "$pid" 2>/dev/null
  while alive "$pid"; do sleep 0.05; done
  rm -f "$PIDFILE"
  return 0
}

do_status() {
  if pid=$(running_pid); then
    echo "* ${u.name}.service - ${u.description} (trustplay lab node)"
    echo "     Loaded: loaded (lab systemctl shim)"
    echo "     Active: active (running)"
    echo "   Main PID: $pid (containerd)"
    return 0
  fi
  echo "o ${u.name}.service - ${u.description} (trustplay lab node)"
  echo "     Loaded: loaded (lab systemctl shim)"
  echo "     Active: inactive (dead)"
  return 3
}

quiet=0
verb=
unit=
for arg in "$@"; do
  case "$arg" in
    -q|--quiet) quiet=1 ;;
    -*) ;;
    *) if [ -z "$verb" ]; then verb=$arg; elif [ -z "$unit" ]; then unit=$arg; fi ;;
  esac
done

case "$verb" in
  daemon-reload) exit 0 ;;
  "") echo "systemctl (trustplay lab shim): give a command, e.g. systemctl restart containerd" >&2; exit 1 ;;
esac

case "$unit" in
  ${u.name}|${u.name}.service) ;;
  "") echo "Too few arguments." >&2; exit 1 ;;
  *)
    echo "Unit \${unit%.service}.service could not be found (this lab node only has ${u.name})." >&2
    [ "$verb" = status ] && exit 4
    exit 5 ;;
esac

case "$verb" in
  start) do_start ;;
  stop) do_stop ;;
  restart) do_stop && do_start ;;
  try-restart|condrestart) if running_pid >/dev/null; then do_stop && do_start; fi ;;
  reload) echo "Failed to reload ${u.name}.service: Job type reload is not applicable for unit ${u.name}.service." >&2; exit 1 ;;
  status) do_status ;;
  is-active)
    if running_pid >/dev/null; then [ "$quiet" = 1 ] || echo active; exit 0; fi
    [ "$quiet" = 1 ] || echo inactive; exit 3 ;;
  is-enabled) [ "$quiet" = 1 ] || echo enabled; exit 0 ;;
  enable|disable) exit 0 ;;
  *) echo "Unknown command verb $verb (this lab shim knows start, stop, restart, status, is-active)." >&2; exit 1 ;;
esac
`;
}

/** The unit a lab node's systemctl manages: containerd itself, or a k3s/RKE2 stand-in that runs it. */
export interface ShimUnit {
  name: string;
  description: string;
  socket: string;
  config: string;
  /** The containerd executable the unit starts. */
  binary: string;
  /** A command run before containerd starts; its failure fails the start, as an ExecStartPre does. */
  preStart?: string;
}

function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
