// Discovery: .session/run/endpoints.json says where a project's service listens.

import { readFileSync } from "node:fs";
import { join } from "node:path";

/** The only protocol version this client speaks. */
export const PROTOCOL = 1;

/** `<project>/.session/run/endpoints.json`. */
export function endpointsPath(project) {
  return join(project, ".session", "run", "endpoints.json");
}

/** The parsed endpoints.json if a live supervisor serves the project, else null. */
export function findEndpoints(project) {
  let ep;
  try {
    ep = JSON.parse(readFileSync(endpointsPath(project), "utf8"));
  } catch {
    return null; // missing or half-read: not running (or starting, or stopping)
  }
  if (ep.protocol !== PROTOCOL) throw new Error(`unsupported protocol ${ep.protocol}`);
  try {
    process.kill(ep.supervisor_pid, 0);
  } catch (err) {
    if (err.code === "ESRCH") return null; // left behind by a crash
  }
  return ep;
}

/** Socket options for CURVE (tcp): the three keys endpoints.json names; {} over ipc. */
export function curveOptions(ep) {
  if (!ep.curve) return {};
  const key = (file) => readFileSync(file, "ascii").trim();
  return {
    curveServerKey: key(ep.curve.server_public_key_file),
    curvePublicKey: key(ep.curve.client_public_key_file),
    curveSecretKey: key(ep.curve.client_secret_key_file),
  };
}

