// Validates the Prometheus Operator resources in the given YAML files against the CRD schemas
// of @kubernetes-models/prometheus-operator (run by `cargo xtask lint`, from the directory
// where that package is installed). Other kinds are skipped; exit status 1 on any failure.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";
import { AlertmanagerConfig } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1beta1/AlertmanagerConfig";

const models = {
  "monitoring.coreos.com/v1/PrometheusRule": PrometheusRule,
  "monitoring.coreos.com/v1beta1/AlertmanagerConfig": AlertmanagerConfig,
};
let failures = 0;
let checked = 0;
for (const file of process.argv.slice(2)) {
  for (const document of parseAllDocuments(readFileSync(file, "utf8"))) {
    if (document.errors.length > 0) {
      console.error(`${file}: YAML error: ${document.errors[0].message}`);
      failures++;
      continue;
    }
    const resource = document.toJS();
    const Model = models[`${resource?.apiVersion}/${resource?.kind}`];
    if (!Model) continue;
    try {
      new Model(resource).validate();
      checked++;
    } catch (error) {
      console.error(`${file}: ${resource.kind} ${resource.metadata?.name}: ${error.message}`);
      failures++;
    }
  }
}
console.log(`${checked} Prometheus Operator resource(s) valid, ${failures} failure(s)`);
process.exit(failures > 0 || checked === 0 ? 1 : 0);
