// quickstart.mjs: node examples/quickstart.mjs /path/to/project
// Uses the client in clients/node/src (docs/protocol.md §9.1 shows this file).
import { Client, Mirror, ServiceError, formatDollars, money } from "../src/index.js";

const project = process.argv[2] ?? process.cwd();

let client;
try {
  client = Client.connect(project); // reads .session/run/endpoints.json, follows it across restarts
} catch (err) {
  console.error("not running: start it with `supervisor start --detach`");
  process.exit(3);
}

// A mirrored view: subscribe first, then snapshot; re-read on any gap in seq.
const mirror = await new Mirror(client).start();
console.log("stage:", mirror.view.session.current_state.stage, "revision:", mirror.view.session.revision);

await client.request("session.set_stage", { stage: "writing" });

// Money comes back as exact digit strings: "0.08535", never 0.08535000000000001.
const logged = await client.request("cost.log", {
  operation: "scene_generation", model: "claude-sonnet-3.5", input_tokens: 12450, output_tokens: 3200,
});
console.log("cost:", logged.operation.cost, "shown as", formatDollars(logged.operation.cost));

// Money you send keeps every digit too: money("0.10") is written as the JSON number 0.10.
const prefs = await client.request("preferences.set", { values: { confirm_above: money("0.10") } });
console.log("confirm above:", prefs.confirm_above);

try {
  await client.request("session.set_stage", { stage: "flying" });
} catch (err) {
  if (!(err instanceof ServiceError)) throw err;
  console.log("refused:", err.code); // branch on err.code, show err.message
}

console.log("mirrored session total:", mirror.view.costs.session_total);
mirror.close();
client.close();
