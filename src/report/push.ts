/**
 * `--metrics-push URL`: the run's Prometheus text PUT to a Pushgateway job
 * (`http://pushgateway:9091/metrics/job/trustplay-check`), replacing that job's last push, so a
 * scheduled check in a Job or container needs no HTTP client of its own (a Job lives too briefly
 * to be scraped). Credentials in the URL (`https://user:pass@host/...`) go in an Authorization
 * header and never into a message.
 */

const TIMEOUT_MS = 10_000;

/** The URL as a message may show it: no user, no password, no query. */
export function redactedUrl(u: URL): string {
  return `${u.protocol}//${u.host}${u.pathname}`;
}

/** Why `value` is not a Pushgateway URL, or undefined when it is one. */
export function pushTargetProblem(value: string): string | undefined {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    return '--metrics-push takes an http(s) URL of a Pushgateway job, e.g. http://pushgateway:9091/metrics/job/trustplay-check';
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    return `--metrics-push takes an http(s) URL, not ${u.protocol}`;
  if (!/\/metrics\/job(@base64)?\/[^/]+/.test(u.pathname))
    return `--metrics-push ${redactedUrl(u)}: a Pushgateway job's path is /metrics/job/NAME (e.g. http://pushgateway:9091/metrics/job/trustplay-check)`;
  return undefined;
}

/**
 * PUTs `text` to the Pushgateway job at `target`. Resolves to undefined when the gateway took it,
 * else to one sentence saying why not (status, refusal, time-out), for the operator.
 */
export async function pushMetrics(target: string, text: string, timeoutMs = TIMEOUT_MS): Promise<string | undefined> {
  const u = new URL(target);
  const headers: Record<string, string> = { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' };
  if (u.username || u.password) {
    const user = decodeURIComponent(u.username);
    const pass = decodeURIComponent(u.password);
    headers['authorization'] = `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
    u.username = '';
    u.password = '';
  }
  const where = redactedUrl(u);
  try {
    const res = await fetch(u, { method: 'PUT', headers, body: text, signal: AbortSignal.timeout(timeoutMs) });
    // The body says why (the gateway's own words), cut to one line.
    const said = (await res.text().catch(() => '')).trim().split('\n')[0]?.slice(0, 200) ?? '';
    if (res.ok) return undefined;
    return `could not push metrics to ${where}: HTTP ${res.status}${said ? ` (${said})` : ''}`;
  } catch (e) {
    const err = e as Error & { cause?: { code?: string; message?: string } };
    const why =
      err.name === 'TimeoutError'
        ? `no answer within ${timeoutMs % 1000 ? `${timeoutMs} ms` : `${timeoutMs / 1000} s`}`
        : (err.cause?.code ?? err.cause?.message ?? err.message);
    return `could not push metrics to ${where}: ${why}`;
  }
}
