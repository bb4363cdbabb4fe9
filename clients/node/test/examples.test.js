// The example that docs/protocol.md §9.1 shows runs against a live service.

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { dirname, join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { sharedService } from "./lib/service.js";

const here = dirname(fileURLToPath(import.meta.url));

test("examples/quickstart.mjs runs and prints exact money", async () => {
  const service = await sharedService();
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [join(here, "..", "examples", "quickstart.mjs"), service.project], { timeout: 30000 });
    assert.match(stdout, /^cost: 0\.08535 shown as \$0\.09$/m);
    assert.match(stdout, /^confirm above: 0\.1$/m);
    assert.match(stdout, /^refused: invalid_args$/m);
  } finally {
    await service.stop();
  }
});

test("docs/protocol.md §9.1 shows quickstart.mjs and Client.request exactly as they are", async () => {
  const { readFileSync } = await import("node:fs");
  const { REPO } = await import("./lib/service.js");
  const docs = readFileSync(join(REPO, "docs", "protocol.md"), "utf8");
  const section = docs.slice(docs.indexOf("### 9.1 Node.js"), docs.indexOf("### 9.2"));
  const blocks = [...section.matchAll(/```js\n([\s\S]*?)\n```/g)].map((m) => m[1]);
  const quickstart = readFileSync(join(here, "..", "examples", "quickstart.mjs"), "utf8").trimEnd();
  const client = readFileSync(join(here, "..", "src", "client.js"), "utf8");
  assert.equal(blocks[0], quickstart);
  assert.ok(client.includes(blocks[1]), "the Client.request excerpt differs from src/client.js");
});
