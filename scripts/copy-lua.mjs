// The build copies the ledger's Lua scripts next to the compiled JavaScript, so dist/ runs on its own.
import { cpSync } from "node:fs";
cpSync(new URL("../src/ledger/lua", import.meta.url), new URL("../dist/ledger/lua", import.meta.url), { recursive: true });
