// startOwnServer(): kept for the files that import it; harness.mjs's startServer() now checks
// itself that the port answering is held by the process it started (see ownsPort there).
export { startServer as startOwnServer, ownsPort } from './harness.mjs';
