/* global process */
// Preloaded into a measured process: prints its peak RSS (kB) on exit, on stderr, as one JSON line.
process.on('exit', () => {
  process.stderr.write(`\n${JSON.stringify({ bench_max_rss_kb: process.resourceUsage().maxRSS })}\n`);
});
