// Discovery: .session/run/endpoints.json says where a project's service listens.

import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";

/** The only protocol version this client speaks. */
export const PROTOCOL = 1;

/** `<project>/.session/run/endpoints.json`. */
export function endpointsPath(project) {
  return join(project, ".session", "run", "endpoints.json");
}

/** `<project>/.session/run/supervisor.lock`: the flock a live supervisor holds. */
export function lockPath(project) {
  return join(project, ".session", "run", "supervisor.lock");
}

/**
 * Whether `pid` holds the flock on `file`, read from Linux's /proc/locks
 * (Node has no flock of its own); null where that cannot be known (no /proc,
 * a lock file we may not stat). A pid alone can lie: after a crash the
 * number may belong to an unrelated process, but the kernel drops the lock
 * the moment its holder dies, so "holds the lock" is the real liveness test.
 */
export function holdsLock(file, pid) {
  let inode;
  try {
    inode = String(statSync(file, { bigint: true }).ino);
  } catch (err) {
    return err.code === "ENOENT" ? false : null;
  }
  let table;
  try {
    table = readFileSync("/proc/locks", "ascii");
  } catch {
    return null;
  }
  for (const line of table.split("\n")) {
    // "1: FLOCK  ADVISORY  WRITE 1416 fe:00:2147697 0 EOF"; waiters have "->" and hold nothing.
    const fields = line.trim().split(/\s+/);
    if (fields[1] !== "FLOCK" || fields[4] !== String(pid)) continue;
    if (fields[5]?.split(":").at(-1) === inode) return true;
  }
  return false;
}

/** Linux: dead but not reaped (its lock is gone, its pid still answers kill 0). */
function isZombie(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "ascii");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) === "Z";
  } catch {
    return false;
  }
}

/**
 * Whether `pid` is the live supervisor of `project`: the process exists, is
 * not a zombie, and holds the project's lock (as the Python client decides).
 */
export function supervisorAlive(project, pid) {
  if (!Number.isInteger(pid) || pid <= 0) return false; // kill(0) would signal our own group
  try {
    process.kill(pid, 0);
  } catch (err) {
    if (err.code === "ESRCH") return false; // gone for good
    // EPERM: it exists and belongs to another user; the lock decides
  }
  if (isZombie(pid)) return false;
  const held = holdsLock(lockPath(project), pid);
  return held ?? true; // no /proc: the pid's existence is all we can know
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
  return supervisorAlive(project, ep.supervisor_pid) ? ep : null; // else left behind by a crash
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

