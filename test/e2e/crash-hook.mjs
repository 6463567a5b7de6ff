// Loaded into the real creditd process by the logging test (NODE_OPTIONS=--import): SIGUSR2 makes the process throw
// an error nobody catches, from a timer, as a bug in a callback would. Only for tests.
process.on("SIGUSR2", () => {
  setTimeout(() => {
    throw new Error("boom from crash-hook");
  }, 0);
});
