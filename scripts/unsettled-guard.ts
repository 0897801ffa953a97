/**
 * Imported first by the generators: Node exits 13, silently, when a top-level await never settles,
 * which is what an import cycle through src/modules/index.ts (its `await import(...)` of every
 * module) does, e.g. a module that imports src/engine/args.ts at load time. The exit handler sees
 * code 0 then (the 13 is set after it), so a generator calls `finished()` when it is done, and an
 * exit without it (and without an error) says why.
 */
let done = false;

/** Called by a generator once it has written everything. */
export function finished(): void {
  done = true;
}

process.on('exit', (code) => {
  if (!done && (code === 0 || code === 13)) {
    process.stderr.write(
      `${process.argv[1] ?? 'generator'}: stopped with nothing written: a top-level await never settled, most likely an import cycle through src/modules/index.ts (a module importing, at load time, something that imports the module list: load it inside the function that needs it)\n`,
    );
    process.exitCode = 13;
  }
});
