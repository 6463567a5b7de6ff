import { readFileSync } from "node:fs";
import { expect, it } from "vitest";
import { renderSettingsMarkdown } from "../../src/config/settings.js";

it("the README's configuration table is the one the code defines", () => {
  const readme = readFileSync(new URL("../../README.md", import.meta.url), "utf8");
  const table = /<!-- settings:start -->\n([\s\S]*?)\n<!-- settings:end -->/.exec(readme)?.[1];
  expect(table?.trim()).toBe(renderSettingsMarkdown().trim());
});
