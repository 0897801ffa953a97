/**
 * Minimal modules for engine tests (never user-facing): they exercise the module contract on real
 * connections without needing containerd or a registry.
 */
import type { RegisteredModule } from '../../src/engine/run.js';
import { TaskError, type Module } from '../../src/engine/module.js';

const fileSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['path', 'content'],
  properties: {
    path: { type: 'string' },
    content: { type: 'string' },
    mode: { type: 'integer' },
    secret: { type: 'string' },
  },
} as const;

/** Writes a file when its content differs. */
export const testFile: Module<{ path: string; content: string; mode?: number }, Buffer | null> = {
  name: 'test.file',
  description: 'write a file (engine tests)',
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
};

/** Always fails (engine tests of failure handling). */
export const testFail: Module<{ message: string }, null> = {
  name: 'test.fail',
  description: 'fail (engine tests)',
  gather: async () => null,
  plan: (args) => {
    throw new TaskError(args.message, 'command');
  },
};

/** A read-only verification: fails with kind 'verification' unless the file exists. */
export const testVerify: Module<{ path: string }, boolean> = {
  name: 'test.verify',
  description: 'verify a file exists (engine tests)',
  readOnly: true,
  gather: async (ctx, args) => (await ctx.conn.stat(args.path)).exists,
  plan: (args, exists) => {
    if (!exists) throw new TaskError(`${args.path} does not exist`, 'verification');
    return [];
  },
};

/** Appends a line to a log file every time it runs (counts handler runs). */
export const testAppend: Module<{ path: string; line: string }, Buffer | null> = {
  name: 'test.append',
  description: 'append a line (engine tests)',
  gather: (ctx, args) => ctx.conn.readFile(args.path),
  plan: (args, observed) => [
    {
      summary: `append to ${args.path}`,
      resources: [{ kind: 'file', path: args.path }],
      apply: (ctx) => ctx.conn.writeFile(args.path, `${observed?.toString() ?? ''}${args.line}\n`, { mkdirs: true }),
    },
  ],
};

const schemas: Record<string, Record<string, unknown>> = {
  'test.file': fileSchema,
  'test.fail': {
    type: 'object',
    additionalProperties: false,
    required: ['message'],
    properties: { message: { type: 'string' } },
  },
  'test.verify': {
    type: 'object',
    additionalProperties: false,
    required: ['path'],
    properties: { path: { type: 'string' } },
  },
  'test.append': {
    type: 'object',
    additionalProperties: false,
    required: ['path', 'line'],
    properties: { path: { type: 'string' }, line: { type: 'string' } },
  },
};

const modules: Record<string, Module<never, unknown>> = {
  'test.file': testFile as Module<never, unknown>,
  'test.fail': testFail as Module<never, unknown>,
  'test.verify': testVerify as Module<never, unknown>,
  'test.append': testAppend as Module<never, unknown>,
};

/** Argument schemas for the loader (`extraModules`). */
export const testModuleSchemas = schemas;

/** A module registry with only the test modules. */
export async function testModules(name: string): Promise<RegisteredModule | undefined> {
  const m = modules[name];
  return m ? { module: m as unknown as RegisteredModule['module'], schema: schemas[name]! } : undefined;
}
