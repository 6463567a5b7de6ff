import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    // Every file starts its own redis-server on a free port, so files run in parallel safely.
    pool: "forks",
    testTimeout: 20_000,
    hookTimeout: 30_000,
  },
});
