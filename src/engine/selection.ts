/** Which hosts run, in which batches, and which tasks they run (`serial`, `--forks`, tags). */
import type { Play, Task } from '../playbook/playbook.js';

/** Run `fn` over items with at most `limit` in flight. */
export async function pool<T>(items: T[], limit: number, fn: (item: T, index: number) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  });
  await Promise.all(workers);
}

/** Hosts of a play split into `serial` batches (number, percentage, or a list of them; the last size repeats). */
export function batches(hosts: string[], serial: Play['serial']): string[][] {
  if (serial === undefined) return hosts.length ? [hosts] : [];
  const sizes = (Array.isArray(serial) ? serial : [serial]).map((s) =>
    typeof s === 'number' ? s : Math.max(1, Math.floor((hosts.length * Number(String(s).replace('%', ''))) / 100)),
  );
  const out: string[][] = [];
  let i = 0;
  let k = 0;
  while (i < hosts.length) {
    const size = Math.max(1, sizes[Math.min(k, sizes.length - 1)]!);
    out.push(hosts.slice(i, i + size));
    i += size;
    k++;
  }
  return out;
}

/** Whether `--tags` / `--skip-tags` select the task. */
export function tagged(task: Task, tags?: string[], skipTags?: string[]): boolean {
  if (skipTags?.some((t) => task.tags.includes(t))) return false;
  if (!tags?.length) return true;
  return task.tags.includes('always') || tags.some((t) => task.tags.includes(t) || t === 'all');
}
