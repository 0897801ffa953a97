/* global process */
// The validate floor (issue 21): what the chosen YAML parser alone costs a `trustplay validate` of
// the same files, in a Node process of its own: start Node, load `yaml`, read each file and parse
// it as trustplay's loader does (a document with source positions, so errors can be located),
// then turn it into plain values. No schema, no module, no variable: the least validate can do.
// Usage: node yaml-floor.mjs FILE... ; prints {"nodes":N}.
import { readFileSync } from 'node:fs';
import { LineCounter, parseDocument } from 'yaml';

let nodes = 0;
for (const file of process.argv.slice(2)) {
  const doc = parseDocument(readFileSync(file, 'utf8'), {
    lineCounter: new LineCounter(),
    prettyErrors: false,
    uniqueKeys: false,
    strict: true,
  });
  if (doc.errors.length) throw new Error(`${file}: ${doc.errors[0].message}`);
  const walk = (v) => {
    nodes++;
    if (v && typeof v === 'object') for (const x of Object.values(v)) walk(x);
  };
  walk(doc.toJS());
}
process.stdout.write(`${JSON.stringify({ nodes })}\n`);
