// Public surface of the Node.js client.
export { Client, ServiceError, RETRYABLE } from "./client.js";
export { PROTOCOL, curveOptions, endpointsPath, findEndpoints, holdsLock, lockPath, supervisorAlive } from "./discovery.js";
export { EventStream } from "./events.js";
export { Mirror } from "./mirror.js";
export { MONEY_KEYS, MONEY_MAPS, formatDollars, money, parseMessage, parseLossless, stringifyExact } from "./json.js";
