// Runs calls on an Extism plugin under the Extism JavaScript runtime, for
// pdk/foreign_test.go. Reads a JSON job on stdin:
//   {"wasm": PATH, "config": {…}, "calls": [{"fn": NAME, "input": BASE64}]}
// and writes [{"output": BASE64} | {"error": TEXT}] on stdout.
import createPlugin from '@extism/extism';
import { readFile } from 'node:fs/promises';

const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const job = JSON.parse(Buffer.concat(chunks).toString());
const plugin = await createPlugin(
  { wasm: [{ data: await readFile(job.wasm) }] },
  { useWasi: true, runInWorker: false, logger: console, config: job.config ?? {} },
);
const results = [];
for (const call of job.calls) {
  try {
    // A copy with its own ArrayBuffer: small Buffers share a pool, which the
    // runtime would read from its start.
    const input = new Uint8Array(Buffer.from(call.input ?? '', 'base64'));
    const out = await plugin.call(call.fn, input);
    results.push({ output: out ? Buffer.from(out.bytes()).toString('base64') : '' });
  } catch (e) {
    results.push({ error: String(e?.message ?? e) });
  }
}
await plugin.close();
process.stdout.write(JSON.stringify(results));
