import { describe, expect, it } from 'vitest';
import {
  agentRunCommand,
  parseRestoreRequest,
  playbookVersion,
  RESTORE_ANNOTATION,
  snapshotsBefore,
  versionOfCommand,
  versionProblem,
} from './restore-request.js';

const V1 = playbookVersion({ 'playbook.yaml': 'a', 'vars.yaml': 'x: 1' });
const V2 = playbookVersion({ 'playbook.yaml': 'b', 'vars.yaml': 'x: 1' });

describe('fleet restore requests', () => {
  it('the playbook version: 12 hex digits of what agents run, changed by the playbook, vars and groups only', () => {
    expect(V1).toMatch(/^[0-9a-f]{12}$/);
    expect(V2).not.toBe(V1);
    expect(playbookVersion({ 'playbook.yaml': 'a', 'vars.yaml': 'x: 1', other: 'ignored' })).toBe(V1);
    expect(playbookVersion({ 'playbook.yaml': 'a', 'vars.yaml': 'x: 1', groups: 'masters' })).not.toBe(V1);
    // No key's text can pass for another's.
    expect(playbookVersion({ 'playbook.yaml': 'ab' })).not.toBe(
      playbookVersion({ 'playbook.yaml': 'a', 'vars.yaml': 'b' }),
    );
    expect(versionProblem(V1)).toBeUndefined();
    expect(versionProblem('abc')).toContain('12 hex digits');
  });

  it('the annotation: absent, a valid request, or one sentence on what is wrong', () => {
    expect(parseRestoreRequest(undefined)).toEqual({});
    expect(parseRestoreRequest({ other: 'x' })).toEqual({});
    const req = { id: 'm1-abc', before: V1, playbook: V2, requested: '2026-12-02T08:00:00Z' };
    expect(parseRestoreRequest({ [RESTORE_ANNOTATION]: JSON.stringify(req) })).toEqual({ request: req });
    expect(parseRestoreRequest({ [RESTORE_ANNOTATION]: '{' }).problem).toBe(
      `annotation ${RESTORE_ANNOTATION} is not JSON`,
    );
    expect(parseRestoreRequest({ [RESTORE_ANNOTATION]: '[]' }).problem).toContain('is not an object');
    expect(parseRestoreRequest({ [RESTORE_ANNOTATION]: JSON.stringify({ ...req, before: 'HEAD' }) }).problem).toBe(
      `annotation ${RESTORE_ANNOTATION} has no valid \`before\``,
    );
    expect(parseRestoreRequest({ [RESTORE_ANNOTATION]: JSON.stringify({ ...req, id: '../x' }) }).problem).toContain(
      '`id`',
    );
  });

  it("an agent run's command carries its playbook version; other commands carry none", () => {
    const cmd = agentRunCommand('kube-system', 'trustplay-playbook', V1);
    expect(versionOfCommand(cmd, 'kube-system', 'trustplay-playbook')).toBe(V1);
    expect(versionOfCommand(cmd, 'kube-system', 'other')).toBeUndefined();
    expect(
      versionOfCommand(
        `agent check kube-system/trustplay-playbook playbook ${V1}`,
        'kube-system',
        'trustplay-playbook',
      ),
    ).toBeUndefined();
    expect(versionOfCommand('restore 20261202-x', 'kube-system', 'trustplay-playbook')).toBeUndefined();
  });

  it("--before V maps to the node's runs from its first under V on, newest first; nothing when V changed nothing here", () => {
    const run = (runId: string, time: string, v: string) => ({
      runId,
      time,
      command: agentRunCommand('ns', 'cm', v),
    });
    const V0 = playbookVersion({ 'playbook.yaml': '0' });
    const snaps = [
      run('r3', '2026-12-02T08:03:00Z', V2),
      run('r1', '2026-12-02T08:01:00Z', V1),
      run('r0', '2026-12-02T08:00:00Z', V0),
      // A restore and a run of another ConfigMap are never chosen.
      { runId: 'x', time: '2026-12-02T08:02:00Z', command: 'agent restore r9 (restore request q)' },
      { runId: 'o', time: '2026-12-02T08:02:30Z', command: agentRunCommand('ns', 'other', V1) },
      run('r2', '2026-12-02T08:02:00Z', V1),
    ];
    expect(snapshotsBefore(snaps, 'ns', 'cm', V1)).toEqual(['r3', 'r2', 'r1']);
    expect(snapshotsBefore(snaps, 'ns', 'cm', V2)).toEqual(['r3']);
    expect(snapshotsBefore(snaps, 'ns', 'cm', V0)).toEqual(['r3', 'r2', 'r1', 'r0']);
    expect(snapshotsBefore(snaps, 'ns', 'cm', playbookVersion({}))).toEqual([]);
  });
});
