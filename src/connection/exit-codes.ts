import { constants } from 'node:os';

const SIGNAL_WORDS: Record<string, string> = {
  SIGKILL: 'killed (SIGKILL; out of memory, or killed by an operator or a timeout)',
  SIGTERM: 'terminated (SIGTERM)',
  SIGINT: 'interrupted (SIGINT)',
  SIGHUP: 'hung up (SIGHUP; its session went away)',
  SIGSEGV: 'crashed (SIGSEGV, segmentation fault)',
  SIGABRT: 'aborted (SIGABRT)',
  SIGPIPE: 'stopped by a broken pipe (SIGPIPE)',
  SIGBUS: 'crashed (SIGBUS)',
};

function signalName(n: number): string | undefined {
  for (const [name, value] of Object.entries(constants.signals)) if (value === n) return name;
  return undefined;
}

function describeSignal(signal: string): string {
  const name = signal.startsWith('SIG') ? signal : `SIG${signal}`;
  return SIGNAL_WORDS[name] ?? `killed by signal ${name}`;
}

/** Explains an exit code or signal in words, for error messages ("exit 127: command not found"). */
export function describeExit(code: number | null | undefined, signal?: string | null): string {
  if (signal) return describeSignal(signal);
  if (code === null || code === undefined) return 'ended without an exit status';
  switch (code) {
    case 0:
      return 'exit 0: success';
    case 1:
      return 'exit 1: failed';
    case 2:
      return 'exit 2: misuse (bad arguments or shell syntax)';
    case 124:
      return 'exit 124: timed out';
    case 125:
      return 'exit 125: the timeout wrapper itself failed';
    case 126:
      return 'exit 126: found but not executable (permission denied)';
    case 127:
      return 'exit 127: command not found';
    case 255:
      return 'exit 255: ssh error (or the command exited with 255)';
  }
  if (code > 128 && code < 128 + 65) {
    const name = signalName(code - 128);
    if (name) return `exit ${code}: ${describeSignal(name)}`;
  }
  return `exit ${code}: failed`;
}
