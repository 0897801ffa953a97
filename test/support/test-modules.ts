/**
 * Minimal modules for engine tests (never user-facing): they exercise the module contract on real
 * connections without needing containerd or a registry.
 */
import { readNode } from '../../src/connection/read-files.js';
import { TaskError } from '../../src/engine/errors.js';
import { defineModule, type AnyModule } from '../../src/engine/module.js';

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
            op: 'file.write',
            summary: `write ${args.path}`,
            path: args.path,
            content: args.content,
            mode: args.mode,
            diff: { target: args.path, before: observed?.toString() ?? '', after: args.content },
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

/** A verification that may run in check mode: fails with kind 'verification' unless the file exists. */
export const testVerify = defineModule({
  name: 'test.verify',
  description: 'verify a file exists (engine tests)',
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['path'],
    properties: { path: { type: 'string' } },
  },
  verifyInCheck: true,
  gather: async () => null,
  plan: () => [],
  verify: async (ctx, args) => {
    if (!(await ctx.conn.stat(args.path)).exists) throw new TaskError(`${args.path} does not exist`, 'verification');
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
      op: 'file.write',
      summary: `append to ${args.path}`,
      path: args.path,
      content: `${observed?.toString() ?? ''}${args.line}\n`,
    },
  ],
});

/** test.file through the node reader, declaring what it reads (read-ahead: src/connection/read-files.ts). */
export const testReadAhead = defineModule({
  name: 'test.readahead',
  description: 'write a file when it differs, read ahead (engine tests)',
  schema: {
    type: 'object',
    additionalProperties: false,
    required: ['path', 'content'],
    properties: { path: { type: 'string' }, content: { type: 'string' } },
  },
  readsAhead: (args) => [args['path'] as string],
  gather: async (ctx, args) => {
    const e = (await readNode(ctx.conn, { files: [args.path] })).entries.get(args.path);
    return e?.kind === 'file' ? e.content.toString() : null;
  },
  plan: (args, observed) =>
    observed === args.content
      ? []
      : [{ op: 'file.write', summary: `write ${args.path}`, path: args.path, content: args.content }],
});

const modules: readonly AnyModule[] = [testFile, testFail, testVerify, testAppend, testReadAhead];

/** Argument schemas for the loader (`extraModules`). */
export const testModuleSchemas: Record<string, Record<string, unknown>> = Object.fromEntries(
  modules.map((m) => [m.name, m.schema]),
);

/** A module registry with only the test modules. */
export async function testModules(name: string): Promise<AnyModule | undefined> {
  return modules.find((m) => m.name === name);
}
