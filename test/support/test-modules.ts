/**
 * Minimal modules for engine tests (never user-facing): they exercise the module contract on real
 * connections without needing containerd or a registry.
 */
import { TaskError, defineModule, type AnyModule } from '../../src/engine/module.js';

/** Writes a file when its content differs. */
export const testFile = defineModule({
  name: 'test.file',
  description: 'write a file (engine tests)',
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['path', 'content'],
    properties: {
      path: { type: 'string' },
      content: { type: 'string' },
      mode: { type: 'integer' },
      secret: { type: 'string' },
    },
  },
  gather: (ctx, args) => ctx.conn.readFile(args.path),
  plan: (args, observed) =>
    observed !== null && observed.toString() === args.content
      ? []
      : [
          {
            summary: `write ${args.path}`,
            resources: [{ kind: 'file', path: args.path }],
            diff: { target: args.path, before: observed?.toString() ?? '', after: args.content },
            apply: (ctx) =>
              ctx.conn.writeFile(args.path, args.content, {
                mkdirs: true,
                ...(args.mode !== undefined ? { mode: args.mode } : {}),
              }),
          },
        ],
});

/** Always fails (engine tests of failure handling). */
export const testFail = defineModule({
  name: 'test.fail',
  description: 'fail (engine tests)',
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['message'],
    properties: { message: { type: 'string' } },
  },
  gather: async () => null,
  plan: (args) => {
    throw new TaskError(args.message, 'command');
  },
});

/** A read-only verification: fails with kind 'verification' unless the file exists. */
export const testVerify = defineModule({
  name: 'test.verify',
  description: 'verify a file exists (engine tests)',
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['path'],
    properties: { path: { type: 'string' } },
  },
  readOnly: true,
  gather: async (ctx, args) => (await ctx.conn.stat(args.path)).exists,
  plan: (args, exists) => {
    if (!exists) throw new TaskError(`${args.path} does not exist`, 'verification');
    return [];
  },
});

/** Appends a line to a log file every time it runs (counts handler runs). */
export const testAppend = defineModule({
  name: 'test.append',
  description: 'append a line (engine tests)',
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['path', 'line'],
    properties: { path: { type: 'string' }, line: { type: 'string' } },
  },
  gather: (ctx, args) => ctx.conn.readFile(args.path),
  plan: (args, observed) => [
    {
      summary: `append to ${args.path}`,
      resources: [{ kind: 'file', path: args.path }],
      apply: (ctx) => ctx.conn.writeFile(args.path, `${observed?.toString() ?? ''}${args.line}\n`, { mkdirs: true }),
    },
  ],
});

const modules: readonly AnyModule[] = [testFile, testFail, testVerify, testAppend];

/** Argument schemas for the loader (`extraModules`). */
export const testModuleSchemas: Record<string, Record<string, unknown>> = Object.fromEntries(
  modules.map((m) => [m.name, m.schema]),
);

/** A module registry with only the test modules. */
export async function testModules(name: string): Promise<AnyModule | undefined> {
  return modules.find((m) => m.name === name);
}
